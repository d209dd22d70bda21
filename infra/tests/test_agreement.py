"""The Rust code, infra/contract.json and the Terraform module must agree.

(a) Lambda environment keys == contract env lists,
(b) IAM actions of each function's role == contract actions,
(c) handler / runtime / architectures / package_type / timeout == contract (and the Dockerfile),
(d) NIXERY_* constants in functions/aws/src/env.rs == NIXERY_* names in the contract.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict

import pytest

from tfparse import MODULE, ROOT, INFRA, data_sources, load_dir, locals_, resources, single

FUNCTIONS = ("registry", "builder")
CONTRACT = json.loads((INFRA / "contract.json").read_text())
DOCS = load_dir(MODULE)
LOCALS = locals_(DOCS)
LAMBDAS = resources(DOCS, "aws_lambda_function")
ENV_RS = ROOT / "functions" / "aws" / "src" / "env.rs"
DOCKERFILE = ROOT / "functions" / "builder-lambda" / "Dockerfile"


def ref(expr: str, kind: str) -> list[str]:
    """Names referenced as `<kind>.<name>` in an expression, in order."""
    return re.findall(re.escape(kind) + r"\.([A-Za-z0-9_]+)", expr)


def env_keys(function: str) -> tuple[set[str], list[set[str]]]:
    """All keys the function's environment can have, and the alternatives of a conditional."""
    env = single(LAMBDAS[function]["environment"])["variables"]
    if isinstance(env, dict):
        return set(env), []
    assert isinstance(env, str) and env.startswith("${"), env
    names = ref(env, "local")
    assert names, f"environment of {function} must be a map or built from locals: {env}"
    keys: set[str] = set()
    alternatives: list[set[str]] = []
    for name in names:
        value = LOCALS[name]
        if isinstance(value, dict):
            keys |= set(value)
            continue
        # A local built from other locals (merge(base, cond ? a : b)).
        inner = ref(value, "local")
        assert inner, f"local.{name} must be a map or a merge of map locals: {value}"
        for n in inner:
            assert isinstance(LOCALS[n], dict), f"local.{n} must be a map literal"
            keys |= set(LOCALS[n])
        for a, b in re.findall(r"\?\s*local\.(\w+)\s*:\s*local\.(\w+)", value):
            alternatives.append(set(LOCALS[a]))
            alternatives.append(set(LOCALS[b]))
    return keys, alternatives


@pytest.mark.parametrize("function", FUNCTIONS)
def test_env_keys_match_contract(function):
    keys, _ = env_keys(function)
    assert sorted(keys) == sorted(CONTRACT[function]["env"])
    assert len(CONTRACT[function]["env"]) == len(set(CONTRACT[function]["env"])), "duplicate env name"


def test_builder_package_source_is_exactly_one_of():
    _, alternatives = env_keys("builder")
    for group in CONTRACT["builder"].get("env_exactly_one_of", []):
        group = set(group)
        branches = [alt for alt in alternatives if alt & group]
        assert len(branches) == 2, f"{group} must be chosen by a conditional between two locals"
        for alt in branches:
            assert len(alt & group) == 1, f"each branch sets exactly one of {group}: {alt}"
        assert set().union(*branches) >= group


def test_env_values_wired_to_resources():
    reg = LOCALS["registry_env"]
    assert reg["NIXERY_BUCKET"] == "${aws_s3_bucket.blobs.id}"
    assert reg["NIXERY_TABLE"] == "${aws_dynamodb_table.index.name}"
    # The registry invokes the function the module creates.
    assert ref(reg["NIXERY_BUILDER_FUNCTION"], "local") == ref(LAMBDAS["builder"]["function_name"], "local")
    base = LOCALS["builder_env_base"]
    assert base["HOME"] == "/tmp"
    assert base["NIXERY_BUCKET"] == reg["NIXERY_BUCKET"]
    assert base["NIXERY_TABLE"] == reg["NIXERY_TABLE"]
    assert "join(\" \"" in base["NIXERY_TRUSTED_KEYS"], "trusted keys are space-separated"


def policy_for(function: str) -> tuple[list[dict], str]:
    """Statements of the inline policies attached to the function's role, and the role name."""
    (role,) = ref(LAMBDAS[function]["role"], "aws_iam_role")
    attachments = [
        n for kind in ("aws_iam_role_policy_attachment", "aws_iam_policy_attachment")
        for n, b in resources(DOCS, kind).items() if role in ref(str(b), "aws_iam_role")
    ]
    assert not attachments, f"role {role} must have no managed policies: {attachments}"
    statements: list[dict] = []
    found = 0
    for body in resources(DOCS, "aws_iam_role_policy").values():
        if ref(body["role"], "aws_iam_role") != [role]:
            continue
        found += 1
        (doc,) = ref(body["policy"], "data.aws_iam_policy_document")
        statements += data_sources(DOCS, "aws_iam_policy_document")[doc]["statement"]
    assert found, f"no aws_iam_role_policy for role {role}"
    return statements, role


@pytest.mark.parametrize("function", FUNCTIONS)
def test_iam_actions_match_contract(function):
    statements, _ = policy_for(function)
    actual: dict[str, set[str]] = defaultdict(set)
    for st in statements:
        assert st.get("effect", "Allow") == "Allow"
        for action in st["actions"]:
            actual[action.split(":", 1)[0]].add(action)
    expected = {svc: set(acts) for svc, acts in CONTRACT[function]["actions"].items() if acts}
    assert dict(actual) == expected


@pytest.mark.parametrize("function", FUNCTIONS)
def test_iam_is_scoped(function):
    statements, _ = policy_for(function)
    for st in statements:
        for action in st["actions"]:
            assert "*" not in action, f"wildcard action {action}"
        for resource in st["resources"]:
            assert resource != "*", f"statement {st.get('sid')} allows every resource"
            assert "${" in resource, f"resource {resource} must reference a module resource"
        service = {a.split(":", 1)[0] for a in st["actions"]}
        assert len(service) == 1, f"one service per statement: {st.get('sid')}"
        svc = service.pop()
        targets = " ".join(st["resources"])
        if svc == "s3":
            assert "aws_s3_bucket.blobs.arn" in targets
            obj = [a for a in st["actions"] if a != "s3:ListBucket"]
            if obj:
                assert all(r.endswith("/*") for r in st["resources"]), "object actions on objects only"
            else:
                assert all(not r.endswith("/*") for r in st["resources"]), "ListBucket on the bucket only"
        elif svc == "dynamodb":
            assert targets == "${aws_dynamodb_table.index.arn}"
        elif svc == "lambda":
            assert targets == "${aws_lambda_function.builder.arn}"
        elif svc == "logs":
            assert targets == "${aws_cloudwatch_log_group.%s.arn}:*" % function


@pytest.mark.parametrize("function", FUNCTIONS)
def test_function_shape_matches_contract(function):
    fn = LAMBDAS[function]
    c = CONTRACT[function]
    assert fn["package_type"] == c["package_type"]
    assert fn["architectures"] == c["architectures"]
    assert fn.get("handler") == c["handler"]
    if "runtime" in c:
        assert fn["runtime"] == c["runtime"]
    timeout = fn["timeout"]
    if isinstance(timeout, str):  # a variable: compare its default
        (var,) = ref(timeout, "var")
        timeout = next(v for d in DOCS for blk in d.get("variable", []) for k, v in blk.items() if k == var)["default"]
    assert timeout == c["timeout_seconds"]


def test_registry_artifact_path():
    assert CONTRACT["registry"]["artifact"] == "target/lambda/nixery-registry-lambda/bootstrap.zip"
    assert "image_uri" not in LAMBDAS["registry"]
    assert "filename" not in LAMBDAS["builder"] and LAMBDAS["builder"]["image_uri"].startswith("${var.")


def test_dockerfile_matches_contract():
    text = DOCKERFILE.read_text()
    lines = [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]
    cmd = [l for l in lines if l.startswith("CMD ")]
    assert cmd, "Dockerfile has no CMD"
    assert json.loads(cmd[-1][4:]) == [CONTRACT["builder"]["command"]]
    assert re.search(r"^COPY --from=\S+ \S+ " + re.escape(CONTRACT["builder"]["command"]) + "$", text, re.M)
    assert re.search(r"^COPY nix/resolve\.nix " + re.escape(CONTRACT["builder"]["resolve_nix"]) + "$", text, re.M)
    assert f"-p {CONTRACT['builder']['crate']}" in text
    users = [l.split()[1] for l in lines if l.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "runs as non-root"
    assert re.search(r"\bHOME=/tmp\b", text)
    for line in lines:
        if line.startswith("FROM "):
            image = line.split()[1]
            assert ":" in image and not image.endswith(":latest"), f"unpinned base image {image}"


def contract_nixery_names() -> set[str]:
    return {n for f in FUNCTIONS for n in CONTRACT[f]["env"] if n.startswith("NIXERY_")}


def test_env_rs_agrees_with_contract():
    if not ENV_RS.exists():
        pytest.skip(f"{ENV_RS.relative_to(ROOT)} does not exist yet; once it does it must agree with infra/contract.json")
    consts = set(re.findall(r'pub\s+const\s+[A-Z0-9_]+\s*:\s*&(?:\'static\s+)?str\s*=\s*"(NIXERY_[A-Z0-9_]*)"', ENV_RS.read_text()))
    assert consts, f"no `pub const X: &str = \"NIXERY_...\"` in {ENV_RS}"
    missing_in_contract = consts - contract_nixery_names()
    missing_in_rust = contract_nixery_names() - consts
    assert not missing_in_contract, f"in env.rs but not in contract.json: {sorted(missing_in_contract)}"
    assert not missing_in_rust, f"in contract.json but not in env.rs: {sorted(missing_in_rust)}"
