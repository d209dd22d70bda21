# nixery: an on-demand Nix container registry on AWS.
#
#   docker pull  ->  API Gateway (HTTP API)  ->  registry Lambda (zip)
#                                                 |-- /token: SSM signing key, DynamoDB accounts (tenants, quotas, usage)
#                                                 |-- DynamoDB: layer/manifest index, build leases
#                                                 |-- lambda:InvokeFunction -> builder Lambda (ECR image)
#                                                 `-- S3: blobs, served by 307 to presigned GET URLs
#
# Files: storage.tf (S3, both DynamoDB tables), auth.tf (token signing key), lambda.tf (ECR,
# both functions, log groups), iam.tf (one least-privilege role per function), api.tf (HTTP
# API, optional custom domain).
# The environment variables and IAM actions below are a contract with the Rust code; they are
# listed in infra/contract.json and checked by infra/tests/test_agreement.py.

data "aws_caller_identity" "current" {}
data "aws_partition" "current" {}
data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.id

  registry_function_name = "${var.name}-registry"
  builder_function_name  = "${var.name}-builder"

  # Lambda writes to /aws/lambda/<function name> by default; the groups are created here so that
  # their retention is managed and the roles need no logs:CreateLogGroup.
  registry_log_group_name = "/aws/lambda/${local.registry_function_name}"
  builder_log_group_name  = "/aws/lambda/${local.builder_function_name}"
  api_log_group_name      = "/aws/apigateway/${var.name}"

  # The absolute base URL clients reach the registry at: the 401 challenge's token realm
  # (<url>/token) must be absolute. No trailing slash.
  public_url = var.domain_name != null ? "https://${var.domain_name}" : trimsuffix(aws_apigatewayv2_api.registry.api_endpoint, "/")

  # The package source, either a channel or a git repository, never both. Both functions get it:
  # the builder builds from it, and the registry keys its manifest cache by its identity and
  # re-resolves it to a commit (NIXERY_PIN_TTL).
  source_env_channel = {
    NIXERY_CHANNEL = var.channel
  }
  source_env_repo = {
    NIXERY_PKGS_REPO = var.pkgs_repo
  }

  # Environment of the registry Lambda (contract: infra/contract.json "registry.env").
  registry_env_base = {
    NIXERY_BUCKET                = aws_s3_bucket.blobs.id
    NIXERY_TABLE                 = aws_dynamodb_table.index.name
    NIXERY_ACCOUNTS_TABLE        = aws_dynamodb_table.accounts.name
    NIXERY_BUILDER_FUNCTION      = local.builder_function_name
    NIXERY_BUILD_WAIT            = tostring(var.build_wait_seconds)
    NIXERY_PRESIGN_TTL           = tostring(var.presign_ttl_seconds)
    NIXERY_AUTH                  = tostring(var.auth_enabled)
    NIXERY_PUBLIC_URL            = local.public_url
    NIXERY_SIGNING_KEY_PARAMETER = aws_ssm_parameter.signing_key.name
    NIXERY_TOKEN_TTL             = tostring(var.token_ttl_seconds)
    NIXERY_PIN_TTL               = tostring(var.pin_refresh_seconds)
    RUST_LOG                     = var.rust_log
  }
  registry_env = merge(local.registry_env_base, var.pkgs_repo == null ? local.source_env_channel : local.source_env_repo)

  # Environment of the builder Lambda (contract: infra/contract.json "builder.env"). No HOME:
  # the image sets HOME=/tmp/nix-home itself (created on first use; Nix refuses a HOME owned by
  # another uid, and Lambda runs the image under an arbitrary one).
  builder_env_base = {
    NIXERY_BUCKET       = aws_s3_bucket.blobs.id
    NIXERY_TABLE        = aws_dynamodb_table.index.name
    NIXERY_BINARY_CACHE = var.binary_cache_url
    NIXERY_TRUSTED_KEYS = join(" ", var.trusted_public_keys)
    NIXERY_LAYER_BUDGET = tostring(var.layer_budget)
    NIXERY_NIX_TIMEOUT  = tostring(var.nix_timeout_seconds)
    RUST_LOG            = var.rust_log
  }
  builder_env = merge(local.builder_env_base, var.pkgs_repo == null ? local.source_env_channel : local.source_env_repo)

  tags = merge({ "app" = "nixery", "nixery:name" = var.name }, var.tags)
}
