"""Models whose labels are not ours (issue 16): `SENTIMENT_LABEL_MAP` / `--label-map`.

A BlazingText model trained on Zhang's raw datasets names its labels `__label__1`,
`__label__2`; others `__label__pos`/`__label__neg`. Each model here is trained by our trainer
on the shared polarity sample relabelled so, with no preprocessing.json and no calibration (as
SageMaker's BlazingText leaves it), and served by real `sentiment serve` processes: the API
(over our endpoint, and over a "SageMaker" endpoint, moto's control plane with our endpoint
answering InvokeEndpoint), `sentiment predict` and `sentiment evaluate` answer through the map;
`/invocations` keeps the model's own labels.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aws_fixtures import REGION, Aws
from conftest import Process, free_port, run_cli, small_params, start_api, start_endpoint
from sentiment.config import Settings
from sentiment.errors import ConfigError
from sentiment.labels import LabelMap
from test_api_sagemaker import ROLE

TEXTS = [
    "Great product, works perfectly. I love it and would buy it again.",
    "Terrible. It broke after two days and the seller never answered. A waste of money.",
]
ZHANG = "1=negative,2=positive"


def _train(
    tiny_model_dir: Path, folder: Path, names: dict[str, str], *, lr: float = 0.5, epochs: int = 5
) -> Path:
    """Our trainer on 4,000 lines of the shared polarity sample, labels renamed by `names`."""
    from sentiment.engine import fit

    folder.mkdir()
    lines = (tiny_model_dir / "train.txt").read_text().splitlines()[:4000]
    for ours, theirs in names.items():
        lines = [line.replace(f"__label__{ours} ", f"__label__{theirs} ", 1) for line in lines]
    (folder / "train.txt").write_text("\n".join(lines) + "\n")
    result = fit(folder / "train.txt", None, small_params(lr=lr, epochs=epochs))
    result.trainer.save_bin(folder / "model.bin")
    result.trainer.close()
    return folder / "model.bin"


@pytest.fixture(scope="module")
def zhang_model(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Labels `__label__1` (negative) and `__label__2` (positive), as on Zhang's CSVs."""
    folder = tmp_path_factory.mktemp("zhang") / "model"
    return _train(tiny_model_dir, folder, {"negative": "1", "positive": "2"})


@pytest.fixture(scope="module")
def posneg_model(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Labels `__label__neg` and `__label__pos`: not inferred."""
    folder = tmp_path_factory.mktemp("posneg") / "model"
    return _train(tiny_model_dir, folder, {"negative": "neg", "positive": "pos"})


@pytest.fixture(scope="module")
def stock(aws: Aws) -> str:
    """An endpoint in moto's SageMaker that runs BlazingText's image (a name of this module's:
    moto, shared by the session, cannot update another module's endpoints in place)."""
    from sentiment.aws import client
    from sentiment.aws import sagemaker as sm

    spec = sm.DeploySpec(
        endpoint="label-map-stock",
        model_data="s3://b/m/model.tar.gz",
        role=ROLE,
        image="blazingtext",
    )
    sm.deploy(spec, client=client("sagemaker", REGION), log=lambda _: None)
    return spec.endpoint


@pytest.fixture(scope="module")
def zhang_endpoint(zhang_model: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    process, url = start_endpoint(
        zhang_model, tmp_path_factory.mktemp("zhang-serve") / "serve.log", "--label-map", ZHANG
    )
    yield url
    process.stop()


def _check_answers(body: dict[str, object], own: set[str]) -> None:
    results = body["results"]
    assert isinstance(results, list)
    assert [r["sentiment"] for r in results] == ["positive", "negative"]
    for r in results:
        assert set(r["scores"]) == {"positive", "negative", "neutral", "mixed"}
        assert sum(r["scores"].values()) == pytest.approx(1.0, abs=1e-5)
        assert set(r["label_scores"]) == own  # the model's own labels


def test_parse_names_the_bad_part_and_the_fix() -> None:
    assert str(LabelMap.parse("__label__1=negative, 2=positive")) == ZHANG
    cases = {
        "1=good": ("'1=good'", "negative, positive, neutral, 1_star"),
        "1negative": ("'1negative' is not LABEL=NAME", "1=negative,2=positive"),
        "1=negative,1=positive": ("label '1' is mapped twice", ""),
    }
    for value, (what, fix) in cases.items():
        with pytest.raises(ConfigError) as err:
            Settings.load(environ={"SENTIMENT_LABEL_MAP": value})
        assert err.value.render().startswith("SENTIMENT_LABEL_MAP: ")
        assert what in err.value.render() and fix in err.value.render()


def test_names_inferred_for_zhangs_layouts_only() -> None:
    none = LabelMap()
    assert none.names(("1", "2"))[0] == ("negative", "positive")
    assert none.names(("2", "1"))[0] == ("positive", "negative")
    assert none.names(tuple("12345"))[0] == ("1_star", "2_stars", "3_stars", "4_stars", "5_stars")
    assert "inferred" in str(none.names(("1", "2"))[1])
    for classes in (("0", "1"), ("1", "2", "3"), ("neg", "pos"), ("negative", "positive")):
        assert none.names(classes) == (classes, None)
    # A map wins over the inference, and leaves the labels it does not name as they are.
    swapped = LabelMap.parse("1=positive,2=negative")
    assert swapped.names(("1", "2"))[0] == ("positive", "negative")
    assert LabelMap.parse("pos=positive").names(("neg", "pos"))[0] == ("neg", "positive")
    # Handed whole to a server's workers.
    settings = Settings.load({"label_map": ZHANG})
    assert Settings.loads(settings.dumps()).label_map == settings.label_map


def test_api_over_our_endpoint_answers_through_the_map(zhang_endpoint: str, tmp_path: Path) -> None:
    raw = httpx.post(f"{zhang_endpoint}/invocations", json={"instances": TEXTS}).json()
    assert [r["label"] for r in raw] == [["__label__2"], ["__label__1"]]  # SageMaker's contract
    extras = httpx.post(
        f"{zhang_endpoint}/invocations",
        json={"instances": TEXTS, "configuration": {"answers": True}},
    ).json()
    assert [r["sentiment"] for r in extras] == ["positive", "negative"]
    assert [r["label"] for r in extras] == [["__label__2"], ["__label__1"]]
    assert httpx.get(f"{zhang_endpoint}/").json()["model"]["label_map"] == ZHANG

    api, url = start_api(
        tmp_path / "api.log", "--endpoint-url", zhang_endpoint, "--label-map", ZHANG
    )
    try:
        answer = httpx.post(f"{url}/sentiment", json={"texts": TEXTS})
        assert answer.status_code == 200, answer.text
        _check_answers(answer.json(), {"1", "2"})
        model = answer.json()["model"]
        assert model["labels"] == ["1", "2"]
        assert "positive = 2; negative = 1" in model["derivation"]
        assert "SENTIMENT_LABEL_MAP (1 as negative, 2 as positive)" in model["derivation"]
    finally:
        api.stop()


def test_without_a_map_zhangs_labels_are_inferred_and_said_so(
    zhang_model: Path, tmp_path: Path
) -> None:
    process, endpoint = start_endpoint(zhang_model, tmp_path / "serve.log")
    api, url = start_api(tmp_path / "api.log", "--endpoint-url", endpoint)
    try:
        answer = httpx.post(f"{url}/sentiment", json={"texts": TEXTS})
        assert answer.status_code == 200, answer.text
        _check_answers(answer.json(), {"1", "2"})
        derivation = answer.json()["model"]["derivation"]
        assert "inferred as Zhang's polarity layout (1 negative, 2 positive)" in derivation
        assert "SENTIMENT_LABEL_MAP (--label-map) overrides" in derivation
    finally:
        api.stop()
        process.stop()


def test_labels_without_polarity_are_a_502_naming_the_setting(
    posneg_model: Path, tmp_path: Path
) -> None:
    process, endpoint = start_endpoint(posneg_model, tmp_path / "serve.log")
    api, url = start_api(tmp_path / "api.log", "--endpoint-url", endpoint)
    try:
        answer = httpx.post(f"{url}/sentiment", json={"texts": TEXTS})
        assert answer.status_code == 502
        body = answer.json()
        assert body["error"] == "bad_gateway", body
        assert body["message"].startswith(
            "The model cannot answer sentiments: The model's label 'neg' has no polarity"
        )
        assert "polarity with SENTIMENT_LABEL_MAP (--label-map)" in body["message"]
        # The endpoint itself answers its own labels, and a 422 for the four answers.
        raw = httpx.post(f"{endpoint}/invocations", json={"instances": TEXTS})
        assert raw.status_code == 200 and raw.json()[0]["label"] == ["__label__pos"]
        extras = httpx.post(
            f"{endpoint}/invocations",
            json={"instances": TEXTS, "configuration": {"answers": True}},
        )
        assert extras.status_code == 422 and "SENTIMENT_LABEL_MAP" in extras.json()["message"]
    finally:
        api.stop()
        process.stop()

    # The same model with the map given to both through the environment, to the API alone
    # (the endpoint cannot give the four answers: the API combines them itself), or to the
    # endpoint alone: the API reads it from the endpoint's `GET /` (it used to answer a 502,
    # reading the labels by its own setting, which has none).
    env = {"SENTIMENT_LABEL_MAP": "neg=negative,pos=positive"}
    for endpoint_env, api_env in ((env, env), (None, env), (env, None)):
        process, endpoint = start_endpoint(posneg_model, tmp_path / "serve2.log", env=endpoint_env)
        api, url = start_api(tmp_path / "api2.log", "--endpoint-url", endpoint, env=api_env)
        try:
            answer = httpx.post(f"{url}/sentiment", json={"texts": TEXTS})
            assert answer.status_code == 200, answer.text
            _check_answers(answer.json(), {"neg", "pos"})
            derivation = answer.json()["model"]["derivation"]
            assert "positive = pos; negative = neg" in derivation, derivation
        finally:
            api.stop()
            process.stop()


def test_api_over_sagemaker_answers_through_the_map(
    aws: Aws,
    stock: str,
    zhang_endpoint: str,
    posneg_model: Path,
    tmp_path: Path,
) -> None:
    """A stock BlazingText endpoint in SageMaker (InvokeEndpoint answered by our endpoint): the
    API combines the four answers itself, from the labels' probabilities, through its map."""
    process, posneg = start_endpoint(posneg_model, tmp_path / "serve.log", "--raw")
    try:
        for runtime, args, own in (
            (zhang_endpoint, (), {"1", "2"}),
            (posneg, ("--label-map", "neg=negative,pos=positive"), {"neg", "pos"}),
        ):
            port = free_port()
            api = Process(
                [
                    "api",
                    "--sagemaker-endpoint",
                    stock,
                    "--region",
                    REGION,
                    "--port",
                    str(port),
                    *args,
                ],
                tmp_path / f"api-{port}.log",
                env=aws.env | {"AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": runtime},
            )
            try:
                api.wait_for(f"http://127.0.0.1:{port}/healthz")
                answer = httpx.post(f"http://127.0.0.1:{port}/sentiment", json={"texts": TEXTS})
                assert answer.status_code == 200, answer.text
                _check_answers(answer.json(), own)
            finally:
                api.stop()
    finally:
        process.stop()


def test_predict_and_evaluate_take_the_map(zhang_model: Path, tmp_path: Path) -> None:
    stdin = "\n".join(TEXTS) + "\n"
    mapped = run_cli("predict", "--model", str(zhang_model), "--label-map", ZHANG, stdin=stdin)
    assert mapped.returncode == 0, mapped.stderr
    assert [json.loads(x)["sentiment"] for x in mapped.stdout.splitlines()] == [
        "positive",
        "negative",
    ]
    # The map is what is read: swapped, it swaps the answers.
    swapped = run_cli(
        "predict",
        "--model",
        str(zhang_model),
        stdin=stdin,
        env={"SENTIMENT_LABEL_MAP": "1=positive,2=negative"},
    )
    assert [json.loads(x)["sentiment"] for x in swapped.stdout.splitlines()] == [
        "negative",
        "positive",
    ]
    bad = run_cli("predict", "--model", str(zhang_model), "--label-map", "1=good", stdin=stdin)
    assert bad.returncode == 2
    assert "'1=good' maps to 'good', which has no polarity" in bad.stderr
    assert "Map each label to one of: negative, positive, neutral" in bad.stderr

    test = tmp_path / "test.txt"
    lines = (zhang_model.parent / "train.txt").read_text().splitlines()[:300]
    test.write_text("\n".join(lines) + "\n")
    report = run_cli(
        "evaluate",
        "--model",
        str(zhang_model),
        "--test",
        str(test),
        "--output",
        str(tmp_path / "report"),
        "--label-map",
        ZHANG,
    )
    assert report.returncode == 0, report.stderr
    answers = json.loads((tmp_path / "report" / "report.json").read_text())["metrics"]["answers"]
    assert answers["classes"] == 2
    assert "1 as negative" in answers["derivation"]


@pytest.mark.parametrize("command", ["serve", "api"])
def test_a_bad_map_is_refused_at_start(command: str, zhang_model: Path) -> None:
    args = ["--model", str(zhang_model)] if command == "serve" else []
    flag = run_cli(command, *args, "--label-map", "1=negative,2")
    assert flag.returncode == 2
    assert "Invalid value for '--label-map': '2' is not LABEL=NAME" in flag.stderr
    env = run_cli(command, *args, env={"SENTIMENT_LABEL_MAP": "1=negative,2=happy"})
    assert env.returncode == 2
    assert "Error: SENTIMENT_LABEL_MAP: '2=happy' maps to 'happy'" in env.stderr


def test_the_lambda_handler_takes_the_map(posneg_model: Path, tmp_path: Path) -> None:
    """The Lambda handler, configured by the environment alone, reads the map too."""
    from sentiment.api.aws_lambda import build_handler
    from test_aws_lambda import CONTEXT, _body, _event

    process, endpoint = start_endpoint(posneg_model, tmp_path / "serve.log")
    try:
        environ = {"SENTIMENT_ENDPOINT_URL": endpoint}
        mapped = build_handler(
            Settings.load(environ=environ | {"SENTIMENT_LABEL_MAP": "neg=negative,pos=positive"})
        )
        answer = mapped(_event("apigateway-http-v2.json"), CONTEXT)
        assert answer["statusCode"] == 200, answer
        assert [r["sentiment"] for r in _body(answer)["results"]] == ["positive", "negative"]
        unmapped = build_handler(Settings.load(environ=environ))
        answer = unmapped(_event("apigateway-http-v2.json"), CONTEXT)
        assert answer["statusCode"] == 502
        assert "SENTIMENT_LABEL_MAP" in _body(answer)["message"]
    finally:
        process.stop()


def test_evaluate_reads_a_raw_csv_with_the_models_labels(zhang_model: Path, tmp_path: Path) -> None:
    """Zhang's own polarity CSV, scored against a model of Zhang's labels (inferred): the
    policy's negative/positive are the model's 1/2."""
    from conftest import POLARITY

    test = tmp_path / "test.csv"
    test.write_text("".join((POLARITY / "test.csv").open().readlines()[:400]))
    report = run_cli(
        "evaluate",
        "--model",
        str(zhang_model),
        "--test",
        str(test),
        "--output",
        str(tmp_path / "r"),
    )
    assert report.returncode == 0, report.stderr
    metrics = json.loads((tmp_path / "r" / "report.json").read_text())["metrics"]
    assert metrics["examples"] == 400 and metrics["accuracy"] > 0.7
    assert set(metrics["per_label"]) >= {"1", "2"}
    assert "inferred as Zhang's polarity layout" in metrics["answers"]["derivation"]
