"""Command-line options generated from config dataclasses (lightmark.config_cli)."""

import argparse
from dataclasses import dataclass, field

from lightmark.config_cli import add_config_options


def test_generated_off_switch_says_it_turns_the_field_off():
    """A True-by-default bool field becomes ``--no-name``; its help says the flag turns off what the field's help
    describes (``lightmark train --no-channels-last`` read as if it turned channels-last on)."""

    @dataclass
    class Cfg:
        fast: bool = field(default=True, metadata={"help": "use the fast path"})
        loud: bool = field(default=False, metadata={"help": "print more"})

    p = argparse.ArgumentParser()
    add_config_options(p, Cfg)
    helps = {a.option_strings[0]: a.help for a in p._actions if a.option_strings}
    assert helps["--no-fast"] == "turn off (on by default): use the fast path"
    assert helps["--loud"] == "print more"
    assert p.parse_args(["--no-fast"]).fast is False and p.parse_args([]).fast is True
