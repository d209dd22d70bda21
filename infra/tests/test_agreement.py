"""The Rust code, infra/contract.json and the Terraform module must agree.

(a) Lambda environment keys == contract env lists; the package source is exactly one of a group,
(b) IAM actions of each role == contract actions, per group (service, and table for DynamoDB),
(c) contract actions == exactly what the contract operations need (OPERATION_ACTIONS below),
(d) the registry may write lease items only (dynamodb:LeadingKeys condition),
(e) every AWS SDK call in functions/ is an operation of some role (admin/test calls allow-listed),
    and every operation of a role is called somewhere,
(f) handler / runtime / architectures / package_type / timeout == contract (and the Dockerfile),
(g) NIXERY_* constants in functions/aws/src/env.rs == NIXERY_* names in the contract.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from pathlib import Path

import pytest

from tfparse import MODULE, ROOT, INFRA, data_sources, load_dir, locals_, resources, single, variables

FUNCTIONS = ("registry", "builder")
CONTRACT = json.loads((INFRA / "contract.json").read_text())
DOCS = load_dir(MODULE)
LOCALS = locals_(DOCS)
VARS = variables(DOCS)
LAMBDAS = resources(DOCS, "aws_lambda_function")
POLICY_DOCS = data_sources(DOCS, "aws_iam_policy_document")
FUNCTIONS_DIR = ROOT / "functions"
ENV_RS = FUNCTIONS_DIR / "aws" / "src" / "env.rs"
DOCKERFILE = FUNCTIONS_DIR / "builder-lambda" / "Dockerfile"
BUILDER_IMAGE_SCRIPT = ROOT / "scripts" / "builder-image.sh"

# Resource each operation group lives on (checked in test_iam_is_scoped).
TABLES = {"dynamodb:index": "aws_dynamodb_table.index", "dynamodb:accounts": "aws_dynamodb_table.accounts"}


def ref(expr: str, kind: str) -> list[str]:
    """Names referenced as `<kind>.<name>` in an expression, in order."""
    return re.findall(re.escape(kind) + r"\.([A-Za-z0-9_]+)", expr)


# ---- (a) environment --------------------------------------------------------------------------


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


@pytest.mark.parametrize("function", FUNCTIONS)
def test_package_source_is_exactly_one_of(function):
    _, alternatives = env_keys(function)
    groups = CONTRACT[function].get("env_exactly_one_of", [])
    assert groups, f"{function}: the package source is chosen per deployment"
    for group in groups:
        group = set(group)
        branches = [alt for alt in alternatives if alt & group]
        assert len(branches) == 2, f"{group} must be chosen by a conditional between two locals"
        for alt in branches:
            assert len(alt & group) == 1, f"each branch sets exactly one of {group}: {alt}"
        assert set().union(*branches) >= group


def test_both_functions_share_the_package_source():
    # The registry keys its cache by the source the builder builds from: same locals, same test.
    def source_expr(function):
        (name,) = ref(single(LAMBDAS[function]["environment"])["variables"], "local")
        return re.sub(r"local\.\w+_env_base", "BASE", LOCALS[name])

    assert source_expr("registry") == source_expr("builder")


def test_env_values_wired_to_resources():
    reg = LOCALS["registry_env_base"]
    assert reg["NIXERY_BUCKET"] == "${aws_s3_bucket.blobs.id}"
    assert reg["NIXERY_TABLE"] == "${aws_dynamodb_table.index.name}"
    assert reg["NIXERY_ACCOUNTS_TABLE"] == "${aws_dynamodb_table.accounts.name}"
    assert reg["NIXERY_SIGNING_KEY_PARAMETER"] == "${aws_ssm_parameter.signing_key.name}"
    assert reg["NIXERY_AUTH"] == "${tostring(var.auth_enabled)}", "'true' or 'false'"
    assert reg["NIXERY_TOKEN_TTL"] == "${tostring(var.token_ttl_seconds)}"
    assert reg["NIXERY_PIN_TTL"] == "${tostring(var.pin_refresh_seconds)}"
    # The token realm must be absolute: https://<domain>, else the API endpoint, no trailing slash.
    assert reg["NIXERY_PUBLIC_URL"] == "${local.public_url}"
    url = LOCALS["public_url"]
    assert "https://${var.domain_name}" in url and "api_endpoint" in url and "trimsuffix" in url, url
    # The registry invokes the function the module creates.
    assert ref(reg["NIXERY_BUILDER_FUNCTION"], "local") == ref(LAMBDAS["builder"]["function_name"], "local")
    base = LOCALS["builder_env_base"]
    assert base["NIXERY_BUCKET"] == reg["NIXERY_BUCKET"]
    assert base["NIXERY_TABLE"] == reg["NIXERY_TABLE"]
    assert "join(\" \"" in base["NIXERY_TRUSTED_KEYS"], "trusted keys are space-separated"


@pytest.mark.parametrize("function", FUNCTIONS)
def test_home_is_the_images_business(function):
    # The builder image sets HOME=/tmp/nix-home (contract builder.image_env); setting it here
    # would override it with a directory Nix may refuse.
    keys, _ = env_keys(function)
    assert "HOME" not in keys


# ---- (b) IAM policies -------------------------------------------------------------------------


def document_statements(expr: str) -> list[dict]:
    """Statements of `data.aws_iam_policy_document.<name>[.key].json`, with its source documents
    and `each.key` / `each.value` of a for_each document resolved."""
    m = re.fullmatch(r'\$\{data\.aws_iam_policy_document\.(\w+)(?:\["(\w+)"\])?\.json\}', expr)
    assert m, f"a policy must be an aws_iam_policy_document's json: {expr}"
    name, key = m.groups()
    doc = POLICY_DOCS[name]
    assert "override_policy_documents" not in doc, f"{name}: overrides hide statements; use source_policy_documents"
    statements = [dict(st) for st in doc.get("statement", [])]
    if "for_each" in doc:
        assert key, f"data.aws_iam_policy_document.{name} has for_each; pick one with [\"key\"]"
        value = doc["for_each"][key]
        inner = value[2:-1] if value.startswith("${") and value.endswith("}") else value
        text = json.dumps(statements).replace("each.value", inner).replace("${each.key}", key)
        statements = json.loads(text)
    else:
        assert key is None, f"{name} has no for_each"
    for source in doc.get("source_policy_documents", []):
        statements += document_statements(source)
    return statements


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
        statements += document_statements(body["policy"])
    assert found, f"no aws_iam_role_policy for role {role}"
    sids = [st.get("sid") for st in statements if st.get("sid")]
    assert len(sids) == len(set(sids)), f"duplicate sids in the {function} policy: {sids}"
    return statements, role


def group_of(statement: dict) -> str:
    """The contract group of a statement: its service, and for DynamoDB the table it names."""
    services = {a.split(":", 1)[0] for a in statement["actions"]}
    assert len(services) == 1, f"one service per statement: {statement.get('sid')}"
    service = services.pop()
    if service != "dynamodb":
        return service
    tables = {t for r in statement["resources"] for t in ref(r, "aws_dynamodb_table")}
    assert len(tables) == 1, f"one table per DynamoDB statement: {statement.get('sid')}"
    return f"dynamodb:{tables.pop()}"


def granted(function: str) -> dict[str, set[str]]:
    statements, _ = policy_for(function)
    actual: dict[str, set[str]] = defaultdict(set)
    for st in statements:
        assert st.get("effect", "Allow") == "Allow"
        actual[group_of(st)] |= set(st["actions"])
    return dict(actual)


def contract_actions(function: str) -> dict[str, set[str]]:
    return {group: set(acts) for group, acts in CONTRACT[function]["actions"].items() if acts}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_iam_actions_match_contract(function):
    assert granted(function) == contract_actions(function)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_iam_is_scoped(function):
    statements, _ = policy_for(function)
    for st in statements:
        for action in st["actions"]:
            assert "*" not in action, f"wildcard action {action}"
        for resource in st["resources"]:
            assert resource != "*", f"statement {st.get('sid')} allows every resource"
            assert "${" in resource, f"resource {resource} must reference a module resource"
        group = group_of(st)
        targets = " ".join(st["resources"])
        if group == "s3":
            assert "aws_s3_bucket.blobs.arn" in targets
            obj = [a for a in st["actions"] if a != "s3:ListBucket"]
            if obj:
                assert all(r.endswith("/*") for r in st["resources"]), "object actions on objects only"
            else:
                assert all(not r.endswith("/*") for r in st["resources"]), "ListBucket on the bucket only"
        elif group in TABLES:
            assert targets == "${%s.arn}" % TABLES[group], f"{st.get('sid')}: table ARN only (no indexes)"
        elif group == "lambda":
            assert targets == "${aws_lambda_function.builder.arn}"
        elif group == "ssm":
            assert targets == "${aws_ssm_parameter.signing_key.arn}"
        elif group == "logs":
            assert targets == "${aws_cloudwatch_log_group.%s.arn}:*" % function
        else:
            pytest.fail(f"{st.get('sid')}: unexpected group {group}")


# ---- (c) operations -> actions ----------------------------------------------------------------

# The IAM actions that authorise each SDK operation (Service Authorization Reference). Presigned
# URLs carry the permission of the operation they are signed for (GetObject, for GET and HEAD).
OPERATION_ACTIONS: dict[str, dict[str, set[str]]] = {
    "s3": {
        "HeadObject": {"s3:GetObject"},
        "GetObject": {"s3:GetObject"},
        "PutObject": {"s3:PutObject"},
        "CreateMultipartUpload": {"s3:PutObject"},
        "UploadPart": {"s3:PutObject"},
        "CompleteMultipartUpload": {"s3:PutObject"},
        "AbortMultipartUpload": {"s3:AbortMultipartUpload"},
        "ListParts": {"s3:ListMultipartUploadParts"},
        "ListObjectsV2": {"s3:ListBucket"},
        "DeleteObject": {"s3:DeleteObject"},
    },
    "dynamodb": {
        op: {f"dynamodb:{op}"}
        for op in ("GetItem", "BatchGetItem", "PutItem", "UpdateItem", "DeleteItem", "BatchWriteItem", "Query", "Scan")
    },
    "ssm": {"GetParameter": {"ssm:GetParameter"}, "GetParameters": {"ssm:GetParameters"}},
    "lambda": {"Invoke": {"lambda:InvokeFunction"}},
}
# TransactWriteItems has no IAM action: each action inside it is authorised as its single-item
# counterpart (DynamoDB developer guide, "Using IAM with DynamoDB transactions").
TRANSACT_ITEM_ACTIONS = {
    "Put": "dynamodb:PutItem",
    "Update": "dynamodb:UpdateItem",
    "Delete": "dynamodb:DeleteItem",
    "ConditionCheck": "dynamodb:ConditionCheckItem",
}
# Granted without an operation of their own:
# - logs: the Lambda runtime writes the function's output to its log group with the role;
# - s3:ListBucket wherever objects are read: HeadObject/GetObject on a missing key then answer
#   404 instead of 403, and the blob store reads 404 as "absent".
RUNTIME_ACTIONS = {"logs": {"logs:CreateLogStream", "logs:PutLogEvents"}}
OBJECT_READS = {"HeadObject", "GetObject"}


def needed_actions(function: str) -> dict[str, set[str]]:
    c = CONTRACT[function]
    transact = c.get("transact_write_items", {})
    needed: dict[str, set[str]] = defaultdict(set)
    for group, ops in c["operations"].items():
        service = group.split(":", 1)[0]
        assert len(ops) == len(set(ops)), f"{function}.{group}: duplicate operation"
        for op in ops:
            if op == "TransactWriteItems":
                kinds = transact.get(group)
                assert kinds, f"{function}.{group}: TransactWriteItems needs transact_write_items.{group}"
                for kind in kinds:
                    needed[group].add(TRANSACT_ITEM_ACTIONS[kind])
                continue
            assert op in OPERATION_ACTIONS.get(service, {}), f"{function}.{group}: no IAM mapping for {op}; add it to OPERATION_ACTIONS"
            needed[group] |= OPERATION_ACTIONS[service][op]
        if service == "s3" and OBJECT_READS & set(ops):
            needed[group].add("s3:ListBucket")
    for group in transact:
        assert "TransactWriteItems" in c["operations"].get(group, []), f"{function}: transact_write_items.{group} without TransactWriteItems"
    for group, actions in RUNTIME_ACTIONS.items():
        needed[group] |= actions
    return dict(needed)


@pytest.mark.parametrize("function", FUNCTIONS)
def test_actions_are_exactly_what_the_operations_need(function):
    needed = needed_actions(function)
    declared = contract_actions(function)
    extra = {g: sorted(a - needed.get(g, set())) for g, a in declared.items() if a - needed.get(g, set())}
    missing = {g: sorted(a - declared.get(g, set())) for g, a in needed.items() if a - declared.get(g, set())}
    assert not extra, f"{function}: granted but no operation needs them: {extra}"
    assert not missing, f"{function}: operations need these but they are not granted: {missing}"
    assert granted(function) == needed


# ---- (d) row-level restrictions -----------------------------------------------------------------


def leading_key_condition(statement: dict) -> list[str] | None:
    for cond in statement.get("condition", []):
        if cond["variable"] == "dynamodb:LeadingKeys":
            assert cond["test"] == "ForAllValues:StringLike", f"{statement.get('sid')}: {cond['test']}"
            return list(cond["values"])
    return None


def test_registry_writes_lease_items_only():
    rule = CONTRACT["registry"]["leading_keys"]["dynamodb:index"]
    assert rule == {"actions": ["dynamodb:PutItem", "dynamodb:DeleteItem"], "values": ["lease#*"]}


@pytest.mark.parametrize("function", FUNCTIONS)
def test_leading_keys_conditions(function):
    statements, _ = policy_for(function)
    rules = CONTRACT[function].get("leading_keys", {})
    for st in statements:
        group = group_of(st)
        rule = rules.get(group)
        restricted = set(rule["actions"]) if rule else set()
        cond = leading_key_condition(st)
        if set(st["actions"]) & restricted:
            # Also keeps the restricted actions out of unconditioned statements.
            assert set(st["actions"]) <= restricted, f"{st.get('sid')}: mixes restricted and free actions"
            assert cond == rule["values"], f"{st.get('sid')}: needs ForAllValues:StringLike dynamodb:LeadingKeys {rule['values']}, has {cond}"
        else:
            assert cond is None, f"{st.get('sid')}: LeadingKeys condition not in the contract"


# ---- (e) SDK calls in the Rust code -----------------------------------------------------------

# Fluent builders of the AWS SDK clients (snake_case of the operation). Listed, not guessed, so
# that `.clone()` or `uri.query()` are never taken for SDK calls.
SDK_METHODS = (
    "get_item", "put_item", "update_item", "delete_item", "batch_get_item", "batch_write_item",
    "transact_write_items", "transact_get_items", "execute_statement", "scan", "query",
    "create_table", "delete_table", "describe_table", "update_time_to_live",
    "put_object", "head_object", "get_object", "delete_object", "copy_object", "list_objects_v2",
    "create_multipart_upload", "upload_part", "complete_multipart_upload", "abort_multipart_upload",
    "list_parts", "create_bucket", "delete_bucket", "head_bucket",
    "get_parameter", "get_parameters", "put_parameter", "invoke",
)
SDK_CALL = re.compile(r"\.(" + "|".join(SDK_METHODS) + r")\(\)")
# A fluent builder ends in .send() (or .presigned(...) for a presigned URL) before the statement
# ends; failing that, its first setter names the AWS resource.
SDK_SETTER = re.compile(r"\s*\.(table_name|bucket|key|function_name|name|request_items|transact_items)\(")

# Operations called only by admin or test code, never with the Lambda roles (the operator's or
# the test server's credentials): not part of any role's operations.
ADMIN_OR_TEST_ONLY = {
    # DynamoIndex::create_table (tests, self-hosted servers) and the tests' accounts table.
    "CreateTable": "table creation for tests and self-hosted DynamoDB-compatible servers; Terraform makes the AWS tables",
    # The conformance tests' S3-compatible server.
    "CreateBucket": "bucket creation for tests against the S3-compatible server; Terraform makes the AWS bucket",
    # Usage reports of the admin CLI (functions/nixery) and test assertions.
    "Scan": "usage reports of the admin CLI and test assertions",
    "Query": "usage reports of the admin CLI (usage#<tenant> by day) and test assertions",
}


def pascal(snake: str) -> str:
    return "".join(part[:1].upper() + part[1:] for part in snake.split("_"))


def sdk_calls() -> list[tuple[str, Path, int]]:
    """(operation, file, line) of every AWS SDK call in functions/."""
    calls = []
    for path in sorted(FUNCTIONS_DIR.rglob("*.rs")):
        if "target" in path.relative_to(FUNCTIONS_DIR).parts:
            continue
        text = path.read_text(encoding="utf-8")
        # Blank out line comments (doc comments too), keeping offsets and line numbers.
        code = re.sub(r"^(\s*)//.*$", lambda m: m.group(1) + " " * (len(m.group(0)) - len(m.group(1))), text, flags=re.M)
        for m in SDK_CALL.finditer(code):
            rest = code[m.end():]
            statement = rest.split(";", 1)[0]
            if ".send()" in statement or ".presigned(" in statement or SDK_SETTER.match(rest):
                calls.append((pascal(m.group(1)), path, code.count("\n", 0, m.start()) + 1))
    return calls


def role_operations() -> dict[str, set[str]]:
    """operation -> the roles and groups that declare it."""
    out: dict[str, set[str]] = defaultdict(set)
    for function in FUNCTIONS:
        for group, ops in CONTRACT[function]["operations"].items():
            for op in ops:
                out[op].add(f"{function}.{group}")
    return out


def test_sdk_call_scanner_finds_calls():
    # Guard against a scanner that silently finds nothing (paths moved, pattern broken).
    ops = {op for op, _, _ in sdk_calls()}
    assert {"GetItem", "PutObject", "Invoke"} <= ops, ops


def test_every_sdk_call_is_an_operation_of_a_role():
    declared = role_operations()
    missing = [
        f"{path.relative_to(ROOT)}:{line}: {op}"
        for op, path, line in sdk_calls()
        if op not in declared and op not in ADMIN_OR_TEST_ONLY
    ]
    assert not missing, (
        "AWS SDK calls that no role's contract operations cover (add the operation to "
        "infra/contract.json and its action to iam.tf, or allow-list an admin/test-only call): "
        + "; ".join(missing)
    )


def test_admin_only_operations_are_not_granted():
    declared = role_operations()
    both = sorted(set(ADMIN_OR_TEST_ONLY) & set(declared))
    assert not both, f"allow-listed as admin/test-only but declared by a role: {both}"


def test_every_operation_of_a_role_is_called():
    # Least privilege the other way round: nothing is granted for a call the code does not make.
    called = {op for op, path, _ in sdk_calls() if "tests" not in path.relative_to(FUNCTIONS_DIR).parts}
    unused = sorted(f"{where}: {op}" for op, roles in role_operations().items() for where in roles if op not in called)
    assert not unused, f"contract operations that no non-test code in functions/ calls: {unused}"


# ---- (f) function shape -----------------------------------------------------------------------


@pytest.mark.parametrize("function", FUNCTIONS)
def test_function_shape_matches_contract(function):
    fn = LAMBDAS[function]
    c = CONTRACT[function]
    assert fn["package_type"] == c["package_type"]
    assert fn.get("handler") == c["handler"]
    if "runtime" in c:
        assert fn["runtime"] == c["runtime"]
    timeout = fn["timeout"]
    if isinstance(timeout, str):  # a variable: compare its default
        (var,) = ref(timeout, "var")
        timeout = VARS[var]["default"]
    assert timeout == c["timeout_seconds"]


@pytest.mark.parametrize("function", FUNCTIONS)
def test_architecture_is_one_variable_for_both(function):
    c = CONTRACT[function]
    assert LAMBDAS[function]["architectures"] == ["${var.architecture}"]
    var = VARS["architecture"]
    assert var["default"] == c["default_architecture"] == "x86_64", "x86_64 is what CI tests"
    (validation,) = var["validation"]
    allowed = re.findall(r'"([a-z0-9_]+)"', validation["condition"].replace('\\"', '"'))
    assert sorted(allowed) == sorted(c["architectures"]), validation["condition"]


def test_registry_artifact_path():
    assert CONTRACT["registry"]["artifact"] == "target/lambda/nixery-registry-lambda/bootstrap.zip"
    assert "image_uri" not in LAMBDAS["registry"]
    assert "filename" not in LAMBDAS["builder"] and LAMBDAS["builder"]["image_uri"].startswith("${var.")


def test_dockerfile_matches_contract():
    text = DOCKERFILE.read_text()
    lines = [l.strip() for l in text.splitlines() if l.strip() and not l.strip().startswith("#")]
    c = CONTRACT["builder"]
    # Lambda runs ENTRYPOINT + CMD; the builder binary must be what runs, in exec form.
    starts = [l for l in lines if l.startswith(("ENTRYPOINT ", "CMD "))]
    assert starts, "Dockerfile has neither ENTRYPOINT nor CMD"
    entrypoint = [l for l in starts if l.startswith("ENTRYPOINT ")]
    first = (entrypoint or starts)[-1]
    assert json.loads(first.split(None, 1)[1])[:1] == [c["command"]], first
    assert re.search(r"^COPY\b.*\s" + re.escape(c["command"]) + "$", text, re.M), f"nothing installs {c['command']}"
    recipe = text + (BUILDER_IMAGE_SCRIPT.read_text() if BUILDER_IMAGE_SCRIPT.exists() else "")
    assert c["crate"] in recipe, f"the image recipe never names the crate {c['crate']}"
    users = [l.split()[1] for l in lines if l.startswith("USER ")]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "runs as non-root"
    for name, value in c["image_env"].items():
        assert re.search(rf"\b{name}={re.escape(value)}(\s|$|\\)", text, re.M), f"the image must set {name}={value}"
    args = dict(re.findall(r"^ARG\s+(\w+)=(\S+)", text, re.M))
    stages: set[str] = set()
    for line in lines:
        if not line.startswith("FROM "):
            continue
        words = line.split()
        image = next(w for w in words[1:] if not w.startswith("--"))
        image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), image)
        if image not in stages:
            assert (":" in image or "@" in image) and not image.endswith(":latest"), f"unpinned base image {image}"
        if len(words) >= 4 and words[-2].upper() == "AS":
            stages.add(words[-1])


# ---- (g) env.rs -------------------------------------------------------------------------------


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
