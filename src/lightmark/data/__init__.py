"""Data I/O: robust image reading/writing, safe unpickling and the dataset readers."""

from ..choices import DatasetFormat
from .formats import (
    PTS_OFFSET,
    FaceDataset,
    Sample,
    detect_format,
    load_dataset,
    load_images,
    read_aflw_mat,
    read_ldmks,
    read_pts,
    read_yaw_csv,
    write_ldmks,
    write_pts,
)
from .images import image_size, read_image, write_image
from .safe_pickle import ALLOWED_GLOBALS, safe_load_pickle

__all__ = [
    "ALLOWED_GLOBALS",
    "DatasetFormat",
    "PTS_OFFSET",
    "FaceDataset",
    "Sample",
    "detect_format",
    "image_size",
    "load_dataset",
    "load_images",
    "read_aflw_mat",
    "read_image",
    "read_ldmks",
    "read_pts",
    "read_yaw_csv",
    "safe_load_pickle",
    "write_image",
    "write_ldmks",
    "write_pts",
]
