# One role per function, each with an inline policy that names exact resources.
# The actions are a contract with the Rust code (infra/contract.json, checked by
# infra/tests/test_agreement.py): add an SDK call there, add its action here.

data "aws_iam_policy_document" "lambda_assume" {
  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRole"]
    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

# ---------------------------------------------------------------------------------------------
# Registry: reads the index, takes build leases, invokes the builder, presigns blob GETs.
# ---------------------------------------------------------------------------------------------

resource "aws_iam_role" "registry" {
  name_prefix        = "${var.name}-registry-"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "registry" {
  statement {
    sid       = "Logs"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.registry.arn}:*"]
  }

  # Presigned GET URLs carry the registry role's permission (GET and HEAD on a presigned URL
  # are both authorised by s3:GetObject); HeadObject gives blob sizes.
  statement {
    sid       = "BlobsRead"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.blobs.arn}/*"]
  }

  # Without s3:ListBucket, HeadObject/GetObject on a missing key answer 403 instead of 404, and
  # the blob store reads 404 as "absent" (BLOB_UNKNOWN). Keys are public digests; no prefix
  # listing is done by the code.
  statement {
    sid       = "BlobsMissingIs404"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.blobs.arn]
  }

  statement {
    sid    = "Index"
    effect = "Allow"
    actions = [
      "dynamodb:GetItem",
      "dynamodb:BatchGetItem",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
      "dynamodb:DeleteItem",
    ]
    resources = [aws_dynamodb_table.index.arn]
  }

  statement {
    sid       = "InvokeBuilder"
    effect    = "Allow"
    actions   = ["lambda:InvokeFunction"]
    resources = [aws_lambda_function.builder.arn]
  }
}

resource "aws_iam_role_policy" "registry" {
  name   = "nixery-registry"
  role   = aws_iam_role.registry.id
  policy = data.aws_iam_policy_document.registry.json
}

# ---------------------------------------------------------------------------------------------
# Builder: writes blobs (single and multipart uploads), reads them back, writes the index.
# ---------------------------------------------------------------------------------------------

resource "aws_iam_role" "builder" {
  name_prefix        = "${var.name}-builder-"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "builder" {
  statement {
    sid       = "Logs"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${aws_cloudwatch_log_group.builder.arn}:*"]
  }

  # PutObject covers CreateMultipartUpload, UploadPart and CompleteMultipartUpload.
  statement {
    sid    = "BlobsWrite"
    effect = "Allow"
    actions = [
      "s3:PutObject",
      "s3:GetObject",
      "s3:AbortMultipartUpload",
      "s3:ListMultipartUploadParts",
    ]
    resources = ["${aws_s3_bucket.blobs.arn}/*"]
  }

  # HeadObject on a missing key must answer 404 (blob absent), not 403; see the registry policy.
  statement {
    sid       = "BlobsMissingIs404"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.blobs.arn]
  }

  statement {
    sid    = "Index"
    effect = "Allow"
    actions = [
      "dynamodb:GetItem",
      "dynamodb:BatchGetItem",
      "dynamodb:PutItem",
      "dynamodb:UpdateItem",
      "dynamodb:DeleteItem",
    ]
    resources = [aws_dynamodb_table.index.arn]
  }
}

resource "aws_iam_role_policy" "builder" {
  name   = "nixery-builder"
  role   = aws_iam_role.builder.id
  policy = data.aws_iam_policy_document.builder.json
}
