# ---------------------------------------------------------------------------------------------
# Log groups (retention managed here; the functions log to their default group names).
# ---------------------------------------------------------------------------------------------

resource "aws_cloudwatch_log_group" "registry" {
  #checkov:skip=CKV_AWS_158:Logs contain request paths and build errors, no secrets; the default CloudWatch encryption suffices and a CMK would add a KMS key policy to manage.
  #checkov:skip=CKV_AWS_338:Retention is a variable (log_retention_days, default 30): a year of debug logs is cost without use for a cache service.
  name              = local.registry_log_group_name
  retention_in_days = var.log_retention_days
  tags              = local.tags
}

resource "aws_cloudwatch_log_group" "builder" {
  #checkov:skip=CKV_AWS_158:Logs contain package names and build errors, no secrets; the default CloudWatch encryption suffices.
  #checkov:skip=CKV_AWS_338:Retention is a variable (log_retention_days, default 30).
  name              = local.builder_log_group_name
  retention_in_days = var.log_retention_days
  tags              = local.tags
}

# ---------------------------------------------------------------------------------------------
# Registry Lambda: the axum router behind API Gateway. Zip built by cargo-lambda for
# var.architecture (x86_64 by default; add --arm64 for arm64):
#   cargo lambda build --release --output-format zip -p nixery-registry-lambda
#   => target/lambda/nixery-registry-lambda/bootstrap.zip
# ---------------------------------------------------------------------------------------------

resource "aws_lambda_function" "registry" {
  #checkov:skip=CKV_AWS_116:Invoked synchronously by API Gateway; errors go back to the client, so a dead-letter queue would never receive anything.
  #checkov:skip=CKV_AWS_117:Talks only to public AWS endpoints (S3, DynamoDB, Lambda); a VPC would need NAT or endpoints for no benefit.
  #checkov:skip=CKV_AWS_173:The environment holds only resource names, URLs and numbers, no secrets (the token signing key stays in SSM; only its parameter name is here); the default Lambda-managed key suffices.
  #checkov:skip=CKV_AWS_272:Code signing needs AWS Signer profiles the operator may not have; the zip is built from this repository and uploaded by Terraform.
  #checkov:skip=CKV_AWS_50:X-Ray tracing is not used by the Rust code and would need xray:PutTraceSegments on the role.
  #checkov:skip=CKV_AWS_115:Concurrency is a variable (registry_reserved_concurrency); the default stays unreserved because new accounts (quota 10) cannot reserve any. API Gateway throttling bounds the rate instead.
  function_name = local.registry_function_name
  description   = "nixery registry: OCI distribution API (pull only), builds images on demand"
  role          = aws_iam_role.registry.arn

  filename         = var.registry_zip_path
  source_code_hash = filebase64sha256(var.registry_zip_path)
  package_type     = "Zip"
  runtime          = "provided.al2023"
  handler          = "bootstrap"
  # The zip must be built for the same architecture (see above).
  architectures = [var.architecture]

  # API Gateway (HTTP API) cuts integrations at 30 s; stop at 29 s so the function, not the
  # gateway, decides the answer (429 + Retry-After while a build continues).
  timeout                        = 29
  memory_size                    = var.registry_memory_mb
  reserved_concurrent_executions = var.registry_reserved_concurrency

  environment {
    variables = local.registry_env
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.registry.name
  }

  tags = local.tags

  depends_on = [
    aws_iam_role_policy.registry,
    aws_cloudwatch_log_group.registry,
  ]
}

# ---------------------------------------------------------------------------------------------
# ECR repository for the builder image (functions/builder-lambda/Dockerfile, built by
# scripts/builder-image.sh).
# ---------------------------------------------------------------------------------------------

resource "aws_ecr_repository" "builder" {
  name                 = "${var.name}-builder"
  image_tag_mutability = "IMMUTABLE"
  force_delete         = var.force_destroy

  image_scanning_configuration {
    scan_on_push = true
  }

  # AWS managed key (aws/ecr): Lambda can pull without extra key policy.
  encryption_configuration {
    encryption_type = "KMS"
  }

  tags = local.tags
}

resource "aws_ecr_lifecycle_policy" "builder" {
  repository = aws_ecr_repository.builder.name
  policy = jsonencode({
    rules = [{
      rulePriority = 1
      description  = "Keep the most recent builder images"
      selection = {
        tagStatus   = "any"
        countType   = "imageCountMoreThan"
        countNumber = var.ecr_keep_images
      }
      action = { type = "expire" }
    }]
  })
}

# Lambda pulls the image with the service principal, not with the function's role. Granting it
# here (scoped to the builder function) keeps Terraform from fighting the statement Lambda would
# otherwise add to the repository policy by itself.
data "aws_iam_policy_document" "ecr_lambda_pull" {
  statement {
    sid     = "LambdaECRImageRetrievalPolicy"
    effect  = "Allow"
    actions = ["ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
    condition {
      test     = "StringLike"
      variable = "aws:sourceArn"
      values   = ["arn:${local.partition}:lambda:${local.region}:${local.account_id}:function:${local.builder_function_name}"]
    }
  }
}

resource "aws_ecr_repository_policy" "builder" {
  repository = aws_ecr_repository.builder.name
  policy     = data.aws_iam_policy_document.ecr_lambda_pull.json
}

# ---------------------------------------------------------------------------------------------
# Builder Lambda: container image with Nix (evaluation only) and the builder binary. It resolves
# package names, fetches the closure from the binary cache as NARs, packs and uploads layers.
# ---------------------------------------------------------------------------------------------

resource "aws_lambda_function" "builder" {
  #checkov:skip=CKV_AWS_116:A failed build is recorded in the index (with expires_at) and retried by the next pull; a DLQ would hold nothing actionable.
  #checkov:skip=CKV_AWS_117:Needs the binary cache on the internet; a VPC would need a NAT gateway for no benefit.
  #checkov:skip=CKV_AWS_173:The environment holds resource names, a public cache URL and public signing keys, no secrets.
  #checkov:skip=CKV_AWS_272:Code signing does not apply to container images (Lambda supports it for zip packages only).
  #checkov:skip=CKV_AWS_50:X-Ray tracing is not used by the Rust code and would need xray:PutTraceSegments on the role.
  function_name = local.builder_function_name
  description   = "nixery builder: resolves packages with Nix, packs and uploads image layers"
  role          = aws_iam_role.builder.arn

  # The image sets its own HOME (/tmp/nix-home) and command; Lambda needs a single-platform
  # image manifest (not an index) for this architecture.
  package_type  = "Image"
  image_uri     = var.builder_image_uri
  architectures = [var.architecture]

  # Sizing (see infra/README.md): 900 s is Lambda's maximum; a cold build of a large closure
  # downloads and recompresses hundreds of MB. CPU scales with memory (1 vCPU per 1769 MB), and
  # gzip plus SHA-256 are CPU bound. /tmp holds the Nix evaluation state (channel tarball or git
  # checkout of the package set, eval cache), never the NARs, which are streamed.
  # Reserved concurrency caps parallel builds (default 10): build leases stop duplicate builds of
  # one image, this stops many different images from running up the bill at once.
  timeout                        = var.builder_timeout_seconds
  memory_size                    = var.builder_memory_mb
  reserved_concurrent_executions = var.builder_reserved_concurrency

  ephemeral_storage {
    size = var.builder_ephemeral_storage_mb
  }

  environment {
    variables = local.builder_env
  }

  logging_config {
    log_format = "Text"
    log_group  = aws_cloudwatch_log_group.builder.name
  }

  tags = local.tags

  depends_on = [
    aws_iam_role_policy.builder,
    aws_cloudwatch_log_group.builder,
    aws_ecr_repository_policy.builder,
  ]
}

# The registry invokes the builder synchronously under a build lease and answers 429 once its
# wait budget is spent (the builder runs on). Should anything invoke it asynchronously, no
# Lambda-side retries: the build lease expires and the next pull starts a fresh build.
resource "aws_lambda_function_event_invoke_config" "builder" {
  function_name                = aws_lambda_function.builder.function_name
  maximum_retry_attempts       = 0
  maximum_event_age_in_seconds = 3600
}
