# nixery: an on-demand Nix container registry on AWS.
#
#   docker pull  ->  API Gateway (HTTP API)  ->  registry Lambda (zip, arm64)
#                                                 |-- DynamoDB: layer/manifest index, build leases
#                                                 |-- lambda:InvokeFunction -> builder Lambda (ECR image)
#                                                 `-- S3: blobs, served by 307 to presigned GET URLs
#
# Files: storage.tf (S3, DynamoDB), lambda.tf (ECR, both functions, log groups),
# iam.tf (one least-privilege role per function), api.tf (HTTP API, optional custom domain).
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

  # Environment of the registry Lambda (contract: infra/contract.json "registry.env").
  registry_env = {
    NIXERY_BUCKET           = aws_s3_bucket.blobs.id
    NIXERY_TABLE            = aws_dynamodb_table.index.name
    NIXERY_BUILDER_FUNCTION = local.builder_function_name
    NIXERY_BUILD_WAIT       = tostring(var.build_wait_seconds)
    NIXERY_PRESIGN_TTL      = tostring(var.presign_ttl_seconds)
    RUST_LOG                = var.rust_log
  }

  # Environment of the builder Lambda (contract: infra/contract.json "builder.env").
  # The package source is either a channel or a git repository, never both.
  builder_env_base = {
    NIXERY_BUCKET       = aws_s3_bucket.blobs.id
    NIXERY_TABLE        = aws_dynamodb_table.index.name
    NIXERY_BINARY_CACHE = var.binary_cache_url
    NIXERY_TRUSTED_KEYS = join(" ", var.trusted_public_keys)
    NIXERY_LAYER_BUDGET = tostring(var.layer_budget)
    NIXERY_NIX_TIMEOUT  = tostring(var.nix_timeout_seconds)
    RUST_LOG            = var.rust_log
    HOME                = "/tmp"
  }
  builder_env_channel = {
    NIXERY_CHANNEL = var.channel
  }
  builder_env_repo = {
    NIXERY_PKGS_REPO = var.pkgs_repo
  }
  builder_env = merge(local.builder_env_base, var.pkgs_repo == null ? local.builder_env_channel : local.builder_env_repo)

  tags = merge({ "app" = "nixery", "nixery:name" = var.name }, var.tags)
}
