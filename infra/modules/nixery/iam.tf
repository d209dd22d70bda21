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
# Statements both roles need, written once. One document per role (for_each) because each role
# may write only to its own log group; each role's policy pulls its copy in through
# source_policy_documents.
# ---------------------------------------------------------------------------------------------

data "aws_iam_policy_document" "common" {
  for_each = {
    registry = aws_cloudwatch_log_group.registry.arn
    builder  = aws_cloudwatch_log_group.builder.arn
  }

  # The log groups are made by Terraform (lambda.tf), hence no logs:CreateLogGroup.
  statement {
    sid       = "Logs"
    effect    = "Allow"
    actions   = ["logs:CreateLogStream", "logs:PutLogEvents"]
    resources = ["${each.value}:*"]
  }

  # HeadObject (is a blob there, how big) is authorised by s3:GetObject, and so is a GET or HEAD
  # on a URL the registry presigns for GetObject.
  statement {
    sid       = "BlobsRead"
    effect    = "Allow"
    actions   = ["s3:GetObject"]
    resources = ["${aws_s3_bucket.blobs.arn}/*"]
  }

  # Without s3:ListBucket, HeadObject/GetObject on a missing key answer 403 instead of 404, and
  # the blob store reads 404 as "absent" (BLOB_UNKNOWN, or "upload it" for the builder). Keys are
  # public digests; the code never lists.
  statement {
    sid       = "BlobsMissingIs404"
    effect    = "Allow"
    actions   = ["s3:ListBucket"]
    resources = [aws_s3_bucket.blobs.arn]
  }
}

# ---------------------------------------------------------------------------------------------
# Registry: reads the index, takes build leases, invokes the builder, presigns blob GETs,
# authenticates tenants and counts their pulls.
# ---------------------------------------------------------------------------------------------

resource "aws_iam_role" "registry" {
  name_prefix        = "${var.name}-registry-"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "registry" {
  source_policy_documents = [data.aws_iam_policy_document.common["registry"].json]

  # Layer and manifest entries, and the state of a build lease.
  statement {
    sid       = "IndexRead"
    effect    = "Allow"
    actions   = ["dynamodb:GetItem"]
    resources = [aws_dynamodb_table.index.arn]
  }

  # The registry writes build leases (pk lease#<hash>) and nothing else: layer and manifest
  # entries are the builder's to write, so a compromised registry cannot point a cached image at
  # another blob. LeadingKeys is the partition key of every item the request touches.
  statement {
    sid       = "IndexLeases"
    effect    = "Allow"
    actions   = ["dynamodb:PutItem", "dynamodb:DeleteItem"]
    resources = [aws_dynamodb_table.index.arn]
    condition {
      test     = "ForAllValues:StringLike"
      variable = "dynamodb:LeadingKeys"
      values   = ["lease#*"]
    }
  }

  # Tenant profiles (GetItem); usage and quota counters (UpdateItem, alone or inside
  # TransactWriteItems, which has no IAM action of its own: each contained action is authorised
  # as its single-item counterpart, Update as UpdateItem; there is no ConditionCheck, since the
  # quota check is the condition of the quota counter's own Update).
  statement {
    sid       = "Accounts"
    effect    = "Allow"
    actions   = ["dynamodb:GetItem", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.accounts.arn]
  }

  # SecureString under the AWS managed key alias/aws/ssm: no kms:Decrypt needed (auth.tf).
  statement {
    sid       = "SigningKey"
    effect    = "Allow"
    actions   = ["ssm:GetParameter"]
    resources = [aws_ssm_parameter.signing_key.arn]
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
# Builder: writes blobs (single and multipart uploads), checks which exist, writes the index.
# ---------------------------------------------------------------------------------------------

resource "aws_iam_role" "builder" {
  name_prefix        = "${var.name}-builder-"
  assume_role_policy = data.aws_iam_policy_document.lambda_assume.json
  tags               = local.tags
}

data "aws_iam_policy_document" "builder" {
  source_policy_documents = [data.aws_iam_policy_document.common["builder"].json]

  # PutObject covers CreateMultipartUpload, UploadPart and CompleteMultipartUpload;
  # AbortMultipartUpload cleans up after a failed part (the lifecycle rule catches the rest).
  statement {
    sid    = "BlobsWrite"
    effect = "Allow"
    actions = [
      "s3:PutObject",
      "s3:AbortMultipartUpload",
    ]
    resources = ["${aws_s3_bucket.blobs.arn}/*"]
  }

  # Reads index entries (GetItem, BatchGetItem), writes layer and manifest entries and build
  # errors (conditional PutItem, BatchWriteItem), deletes items (DeleteItem). Entries are never
  # updated in place, hence no UpdateItem.
  statement {
    sid    = "Index"
    effect = "Allow"
    actions = [
      "dynamodb:GetItem",
      "dynamodb:BatchGetItem",
      "dynamodb:PutItem",
      "dynamodb:BatchWriteItem",
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
