"""Static checks of the Terraform (no terraform binary here): it parses, and the module has the
resources and settings the deployment relies on."""

from __future__ import annotations

import re

import pytest

from tfparse import EXAMPLE, INFRA, MODULE, load_dir, load_file, outputs, resources, single, tf_files, variables

MOD = load_dir(MODULE)
EX = load_dir(EXAMPLE)
VARS = variables(MOD)


def default(name):
    return VARS[name].get("default")


def var_of(expr) -> str:
    m = re.fullmatch(r"\$\{var\.(\w+)\}", str(expr))
    assert m, f"expected a bare variable reference, got {expr!r}"
    return m.group(1)


def one(rtype: str) -> dict:
    found = resources(MOD, rtype)
    assert len(found) == 1, f"expected one {rtype}, found {sorted(found)}"
    return next(iter(found.values()))


@pytest.mark.parametrize("path", tf_files(), ids=lambda p: str(p.relative_to(INFRA)))
def test_parses(path):
    doc = load_file(path)
    assert isinstance(doc, dict) and doc, f"{path} is empty"


def test_layout():
    for f in ("main.tf", "variables.tf", "outputs.tf", "versions.tf", "iam.tf", "storage.tf", "auth.tf", "api.tf", "lambda.tf"):
        assert (MODULE / f).is_file(), f
    for f in ("main.tf", "variables.tf", "outputs.tf"):
        assert (EXAMPLE / f).is_file(), f
    assert (INFRA / "README.md").is_file()


def test_s3_public_access_blocked():
    pab = one("aws_s3_bucket_public_access_block")
    for k in ("block_public_acls", "block_public_policy", "ignore_public_acls", "restrict_public_buckets"):
        assert pab[k] is True, k
    assert pab["bucket"] == "${aws_s3_bucket.blobs.id}"


def test_s3_encrypted():
    sse = one("aws_s3_bucket_server_side_encryption_configuration")
    rule = single(single(sse["rule"])["apply_server_side_encryption_by_default"])
    assert rule["sse_algorithm"] in ("AES256", "aws:kms", "aws:kms:dsse")


def test_s3_lifecycle_aborts_multipart_uploads():
    lc = one("aws_s3_bucket_lifecycle_configuration")
    rules = lc["rule"]
    aborts = [r for r in rules if "abort_incomplete_multipart_upload" in r]
    assert aborts, "no abort_incomplete_multipart_upload rule"
    rule = aborts[0]
    assert rule["status"] == "Enabled"
    assert single(rule["abort_incomplete_multipart_upload"])["days_after_initiation"] == 1


def test_dynamodb_tables():
    tables = resources(MOD, "aws_dynamodb_table")
    assert set(tables) == {"index", "accounts"}
    for name, t in tables.items():
        assert t["billing_mode"] == "PAY_PER_REQUEST", name
        assert t["hash_key"] == "pk", name
        assert single(t["point_in_time_recovery"])["enabled"] is True, name
        assert t["deletion_protection_enabled"] == "${var.deletion_protection}", name
        # Encryption at rest alike: the AWS-owned key (no server_side_encryption block) for both.
        assert ("server_side_encryption" in t) == ("server_side_encryption" in tables["index"]), name
        assert t["name"] == "${var.name}-%s" % name
    index, accounts = tables["index"], tables["accounts"]
    assert "range_key" not in index
    assert index["attribute"] == [{"name": "pk", "type": "S"}]
    assert single(index["ttl"]) == {"attribute_name": "expires_at", "enabled": True}
    assert accounts["range_key"] == "sk"
    assert sorted(accounts["attribute"], key=lambda a: a["name"]) == [{"name": "pk", "type": "S"}, {"name": "sk", "type": "S"}]


def test_signing_key_parameter():
    param = one("aws_ssm_parameter")
    assert param["type"] == "SecureString"
    assert param["name"].startswith("/${var.name}/"), "named under the module's prefix"
    assert "key_id" not in param, "AWS managed key alias/aws/ssm: no kms:Decrypt on the role"
    assert param["value"] == "${random_password.signing_key.result}"
    # Rotations happen outside Terraform and must survive the next apply.
    assert single(param["lifecycle"])["ignore_changes"] in (["${value}"], ["value"])
    pw = one("random_password")
    assert pw["length"] == 64 and pw["special"] is False


def test_log_groups_have_retention():
    groups = resources(MOD, "aws_cloudwatch_log_group")
    assert {"registry", "builder"} <= set(groups)
    for name, g in groups.items():
        assert var_of(g["retention_in_days"]) == "log_retention_days", name
    assert default("log_retention_days") == 30


def test_lambda_log_groups_are_the_functions_own():
    fns = resources(MOD, "aws_lambda_function")
    for name, fn in fns.items():
        assert single(fn["logging_config"])["log_group"] == f"${{aws_cloudwatch_log_group.{name}.name}}"


def test_ecr_repository():
    repo = one("aws_ecr_repository")
    assert repo["image_tag_mutability"] == "IMMUTABLE"
    assert single(repo["image_scanning_configuration"])["scan_on_push"] is True
    assert "aws_ecr_repository_policy" in {t for d in MOD for e in d.get("resource", []) for t in e}


def test_two_lambdas_sized():
    fns = resources(MOD, "aws_lambda_function")
    assert set(fns) == {"registry", "builder"}
    reg, bld = fns["registry"], fns["builder"]
    assert reg["timeout"] == 29
    assert default(var_of(reg["memory_size"])) == 512
    assert reg["source_code_hash"].startswith("${filebase64sha256(var.registry_zip_path)")
    assert default(var_of(bld["timeout"])) == 900
    assert 3008 <= default(var_of(bld["memory_size"])) <= 10240
    assert default(var_of(single(bld["ephemeral_storage"])["size"])) == 10240
    assert bld["image_uri"] == "${var.builder_image_uri}"


def test_variable_defaults():
    assert default("binary_cache_url") == "https://cache.nixos.org"
    assert default("trusted_public_keys") == ["cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="]
    assert default("layer_budget") == 94
    assert default("build_wait_seconds") == 25
    assert default("presign_ttl_seconds") == 300
    assert default("channel") and "pkgs_repo" in VARS and default("pkgs_repo") is None
    for name, v in VARS.items():
        assert v.get("description"), f"variable {name} has no description"
    # A build wait that reaches the registry's 29 s timeout would turn 429 into 504.
    assert default("build_wait_seconds") < resources(MOD, "aws_lambda_function")["registry"]["timeout"]


def test_api_gateway():
    api = one("aws_apigatewayv2_api")
    assert api["protocol_type"] == "HTTP"
    integ = one("aws_apigatewayv2_integration")
    assert integ["integration_uri"] == "${aws_lambda_function.registry.invoke_arn}"
    assert integ["timeout_milliseconds"] <= 30000
    route = one("aws_apigatewayv2_route")
    # docker needs /v2/ at the root of the host; $default also carries GET and POST /token.
    assert route["route_key"] == "$default"
    stage = one("aws_apigatewayv2_stage")
    assert stage["name"] == "$default" and stage["auto_deploy"] is True
    perm = one("aws_lambda_permission")
    assert perm["principal"] == "apigateway.amazonaws.com"


def test_custom_domain_is_optional():
    for rtype in ("aws_apigatewayv2_domain_name", "aws_apigatewayv2_api_mapping"):
        r = one(rtype)
        assert "var.domain_name" in r.get("count", "") or "var.domain_name" in r.get("for_each", ""), rtype
    dn = one("aws_apigatewayv2_domain_name")
    assert single(dn["domain_name_configuration"])["certificate_arn"] == "${var.certificate_arn}"
    assert default("domain_name") is None and default("certificate_arn") is None


def test_module_outputs():
    outs = outputs(MOD)
    for name in ("registry_url", "public_url", "bucket", "table", "accounts_table", "signing_key_parameter", "registry_function_name", "builder_function_name"):
        assert name in outs, name
    url = outs["registry_url"]["value"]
    assert "trimprefix" in url and "https://" in url, "registry_url is a host without scheme"


def test_example_uses_module():
    mods = [m for d in EX for blk in d.get("module", []) for m in blk.values()]
    assert len(mods) == 1
    m = mods[0]
    assert m["source"] == "../../modules/nixery"
    args = set(m) - {"source", "version", "providers", "depends_on", "count", "for_each"}
    assert args <= set(VARS), f"unknown module arguments: {args - set(VARS)}"
    required = {n for n, v in VARS.items() if "default" not in v}
    assert required <= args, f"required module variables not passed: {required - args}"
    assert "registry_url" in outputs(EX)
    ex_vars = variables(EX)
    assert ex_vars["registry_zip_path"]["default"].endswith("target/lambda/nixery-registry-lambda/bootstrap.zip")


def test_checkov_skips_are_justified():
    for path in tf_files():
        for m in re.finditer(r"#\s*checkov:skip=([A-Z0-9_]+)(?::(.*))?", path.read_text()):
            assert m.group(2) and len(m.group(2).strip()) > 20, f"{path.name}: {m.group(1)} skipped without a reason"


# ---- variables: validation and nullability ------------------------------------------------------


def validations(name) -> list[str]:
    return [v["condition"] for v in VARS[name].get("validation", [])]


@pytest.mark.parametrize("docs", [MOD, EX], ids=["module", "example"])
def test_non_null_defaults_are_not_nullable(docs):
    for name, v in variables(docs).items():
        if v.get("default", None) is not None:
            assert v.get("nullable") is False, f"variable {name} has a default but accepts null"


def test_numeric_limits_are_validated():
    names = [n for n in VARS if n.startswith("throttle_") or n.endswith("_reserved_concurrency")]
    assert len(names) == 4, names
    for name in names + ["ecr_keep_images", "nix_timeout_seconds", "token_ttl_seconds", "pin_refresh_seconds"]:
        assert validations(name), f"variable {name} has no validation"
    # A nullable variable's validation must not compare null with a number.
    (cond,) = validations("registry_reserved_concurrency")
    assert re.match(r"\$\{var\.registry_reserved_concurrency == null \?", cond), cond


def test_builder_concurrency_is_capped_by_default():
    # Build leases stop duplicate builds of one image; this bounds builds of different images.
    v = VARS["builder_reserved_concurrency"]
    assert isinstance(v["default"], (int, float)) and not isinstance(v["default"], bool)
    assert v["default"] == 10
    (cond,) = validations("builder_reserved_concurrency")
    assert ">= 1" in cond and "<= 1000" in cond, cond
    assert one_lambda("builder")["reserved_concurrent_executions"] == "${var.builder_reserved_concurrency}"


def test_nix_timeout_is_under_the_builder_timeout():
    assert any("var.nix_timeout_seconds < var.builder_timeout_seconds" in c for c in validations("nix_timeout_seconds"))
    assert default("nix_timeout_seconds") < default("builder_timeout_seconds")
    assert var_of(one_lambda("builder")["timeout"]) == "builder_timeout_seconds"


def test_terraform_version_allows_cross_variable_validation():
    (tf,) = [b for d in MOD for b in d.get("terraform", [])]
    m = re.fullmatch(r">=\s*1\.(\d+)(\.\d+)?", tf["required_version"])
    assert m and int(m.group(1)) >= 9, f"validations that refer to other variables need Terraform >= 1.9: {tf['required_version']}"
    providers = single(tf["required_providers"])
    assert providers["random"]["source"] == "hashicorp/random"


def test_pay_per_pull_defaults():
    assert default("auth_enabled") is True
    assert default("token_ttl_seconds") == 300
    assert default("pin_refresh_seconds") == 300
    assert default("architecture") == "x86_64"


def one_lambda(name):
    return resources(MOD, "aws_lambda_function")[name]
