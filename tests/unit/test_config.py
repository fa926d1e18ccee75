from dataclasses import dataclass, field
from typing import Literal

import pytest

from avsuite.audio.frontend import FrontendConfig
from avsuite.config import ConfigError, dump_config, from_dict, load_config, parse_override, to_dict


@dataclass(frozen=True, kw_only=True)
class Optim:
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    scheduler: Literal["cosine", "constant"] = "cosine"


@dataclass(frozen=True, kw_only=True)
class Cfg:
    name: str = "x"
    steps: int = 10
    init_from: str | None = None
    optim: Optim = field(default_factory=Optim)
    frontend: FrontendConfig = field(default_factory=FrontendConfig)


def test_yaml_and_overrides(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("steps: 5\noptim:\n  lr: 1e-4\nfrontend:\n  n_mels: 64\n")
    cfg = load_config(Cfg, path, ["optim.scheduler=constant", "init_from=runs/a", "optim.betas=[0.8, 0.9]"])
    assert cfg.steps == 5 and cfg.optim.lr == pytest.approx(1e-4)
    assert cfg.optim.scheduler == "constant" and cfg.init_from == "runs/a"
    assert cfg.optim.betas == (0.8, 0.9) and cfg.frontend.n_mels == 64
    with pytest.raises(Exception):
        cfg.steps = 3  # frozen


def test_round_trip_through_dump():
    cfg = load_config(Cfg, None, ["steps=7", "frontend.log=whisper"])
    again = from_dict(Cfg, __import__("yaml").safe_load(dump_config(cfg)))
    assert again == cfg and to_dict(again)["frontend"]["log"] == "whisper"


@pytest.mark.parametrize("override, needle", [
    ("optim.lrr=1", "optim.lrr"),                 # unknown key is named with its path
    ("steps=ten", "steps"),                       # wrong type names the key
    ("steps=true", "steps"),                      # bool is not an int
    ("optim.scheduler=linearish", "optim.scheduler"),
    ("frontend.n_fft=100", "frontend"),           # __post_init__ validation (win_length > n_fft)
    ("optim=3", "optim"),                         # a value where a section is expected
])
def test_bad_values_are_errors_naming_the_key(override, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        load_config(Cfg, None, [override] + (["frontend.win_length=400"] if "n_fft" in override else []))


def test_bad_override_syntax_and_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="key=value"):
        parse_override("steps")
    with pytest.raises(ConfigError, match="not found"):
        load_config(Cfg, tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_config(Cfg, bad)


def test_yaml_aliases_duplicate_keys_and_non_finite_numbers_are_refused(tmp_path):
    from avsuite.config import ConfigError, load_config
    from avsuite.recipes.common import OptimConfig, TrainerConfig

    bomb = tmp_path / "bomb.yaml"
    bomb.write_text('a: &a ["x","x","x","x","x","x","x","x","x"]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n')
    with pytest.raises(ConfigError, match="aliases"):
        load_config(OptimConfig, bomb)
    dup = tmp_path / "dup.yaml"
    dup.write_text("lr: 0.1\nweight_decay: 0.0\nlr: 0.2\n")
    with pytest.raises(ConfigError, match="line 3: duplicate key 'lr' \\(first on line 1\\)"):
        load_config(OptimConfig, dup)
    with pytest.raises(ConfigError, match="lr: must be a finite number"):
        load_config(OptimConfig, None, ["lr=.inf"])
    for override, msg in (["max_steps=-5", "max_steps must be >= 1"], ["devices=0", "devices must be >= 1"],
                          ["accelerator=tpu", "accelerator: 'tpu' is not one of"]):
        with pytest.raises(ConfigError, match=msg):
            load_config(TrainerConfig, None, [override])
