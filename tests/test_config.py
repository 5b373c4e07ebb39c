"""Bad configs are refused before training, naming the key."""

import json

import pytest

from training.config import TrainConfig, load_config, validate
from training.train import main, train


def test_defaults_and_shipped_configs_are_valid():
    validate(TrainConfig())
    from training.sample_runs import CONFIGS, SAMPLE_RUNS

    for name in SAMPLE_RUNS:
        cfg = load_config(str(CONFIGS / f"{name}.toml"))
        assert cfg.description and cfg.contrastive.temperature > 0


def test_overrides_are_typed():
    cfg = load_config(None, ["contrastive.temperature=0.2", "data.oversample=true", "data.kind=sequences", "steps=10"])
    assert cfg.contrastive.temperature == 0.2 and cfg.data.oversample is True
    assert cfg.data.kind == "sequences" and cfg.steps == 10


def test_json_config(tmp_path):
    p = tmp_path / "c.json"
    p.write_text(json.dumps({"contrastive": {"weight": 0.5}, "description": "x"}))
    assert load_config(str(p)).contrastive.weight == 0.5


@pytest.mark.parametrize(
    "override,key",
    [
        ("contrastive.temprature=0.1", "contrastive.temprature"),
        ("nonsense=1", "nonsense"),
        ("contrastive.temperature=0", "contrastive.temperature"),
        ("contrastive.temperature=-0.5", "contrastive.temperature"),
        ("contrastive.weight=-1", "contrastive.weight"),
        ('contrastive.temperature="hot"', "contrastive.temperature"),
        ("steps=1.5", "steps"),
        ("data.oversample=1", "data.oversample"),
        ("batch_size=1", "batch_size"),
        ("head.norm=groupnorm", "head.norm"),
        ("contrastive.objective=simclr2", "contrastive.objective"),
        ("contrastive.tau_plus=1.0", "contrastive.tau_plus"),
    ],
)
def test_bad_values_name_the_key(override, key):
    with pytest.raises(ValueError, match=key.replace(".", r"\.")):
        load_config(None, [override])


def test_batch_larger_than_dataset_is_refused(tmp_path):
    cfg = load_config(None, ["batch_size=5000"])
    with pytest.raises(ValueError, match="batch_size"):
        train(cfg, str(tmp_path))
    assert not any(tmp_path.iterdir())  # refused before a run was created


def test_cli_exits_with_message(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        main(["--runs-dir", str(tmp_path), "--set", "contrastive.temperature=0"])
    assert e.value.code == 2
    assert "contrastive.temperature" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--config", str(tmp_path / "missing.toml")])
    assert "missing.toml" in capsys.readouterr().err
