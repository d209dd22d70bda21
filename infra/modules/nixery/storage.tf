# ---------------------------------------------------------------------------------------------
# S3: layer blobs, image configs and manifests, all stored under their sha256 digest.
# ---------------------------------------------------------------------------------------------

resource "aws_s3_bucket" "blobs" {
  #checkov:skip=CKV_AWS_18:Server access logs would double the request count of a pull-heavy bucket; CloudTrail data events can be enabled account-wide if needed.
  #checkov:skip=CKV_AWS_144:Cross-region replication is unnecessary: every blob can be rebuilt deterministically from the package set and the binary cache.
  #checkov:skip=CKV_AWS_145:SSE-S3 (AES256) is used on purpose: SSE-KMS would add kms:Decrypt/GenerateDataKey to both roles and a KMS request per blob GET; the blobs are public package builds.
  #checkov:skip=CKV_AWS_21:Versioning is off on purpose: objects are content-addressed (key = sha256 digest) and written once with If-None-Match, so a key never gets a second version; versions would only add cost.
  #checkov:skip=CKV2_AWS_62:No consumer for event notifications; the index in DynamoDB is written by the builder itself.
  bucket_prefix = "${var.name}-blobs-"
  force_destroy = var.force_destroy
  tags          = local.tags
}

resource "aws_s3_bucket_ownership_controls" "blobs" {
  bucket = aws_s3_bucket.blobs.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_public_access_block" "blobs" {
  bucket                  = aws_s3_bucket.blobs.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

resource "aws_s3_bucket_server_side_encryption_configuration" "blobs" {
  bucket = aws_s3_bucket.blobs.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "blobs" {
  bucket = aws_s3_bucket.blobs.id

  # Builds that time out or crash mid-upload leave multipart uploads behind; their parts are
  # billed until aborted.
  rule {
    id     = "abort-incomplete-multipart-uploads"
    status = "Enabled"
    filter {}
    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }
}

# Presigned URLs are https; refuse anything else.
data "aws_iam_policy_document" "blobs_tls_only" {
  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.blobs.arn, "${aws_s3_bucket.blobs.arn}/*"]
    principals {
      type        = "*"
      identifiers = ["*"]
    }
    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

resource "aws_s3_bucket_policy" "blobs" {
  bucket     = aws_s3_bucket.blobs.id
  policy     = data.aws_iam_policy_document.blobs_tls_only.json
  depends_on = [aws_s3_bucket_public_access_block.blobs]
}

# ---------------------------------------------------------------------------------------------
# DynamoDB index: single hash key `pk` (layer entries, manifest entries, build leases and build
# errors are told apart by a prefix in pk: layer#, manifest#, lease#, ...). Leases and errors
# carry `expires_at` (epoch seconds) and are removed by TTL. The registry may write lease#
# items only (iam.tf); everything else is written by the builder.
# ---------------------------------------------------------------------------------------------

resource "aws_dynamodb_table" "index" {
  #checkov:skip=CKV_AWS_119:The table holds only digests, store-path hashes and lease timestamps; the default AWS-owned key encryption suffices and avoids KMS permissions and per-request cost.
  name                        = "${var.name}-index"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "pk"
    type = "S"
  }

  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }

  point_in_time_recovery {
    enabled = true
  }

  tags = local.tags
}

# ---------------------------------------------------------------------------------------------
# DynamoDB: accounts and usage for pay per pull, apart from the index because it is the one
# thing here that cannot be rebuilt (tenants, their limits, what they pulled) and because the
# registry's rights on it differ. Items (pk / sk):
#   tenant#<name> / profile                  status, limits, hash of the API key (never the key)
#   usage#<tenant> / <YYYY-MM-DD>#<repository>  pulls, bytes, builds counters
#   quota#<tenant> / <YYYY-MM-DD>            daily counters, checked by conditional writes
# The registry reads profiles and counts pulls (UpdateItem, TransactWriteItems); the admin CLI
# creates tenants and reads usage with the operator's own credentials.
# ---------------------------------------------------------------------------------------------

resource "aws_dynamodb_table" "accounts" {
  #checkov:skip=CKV_AWS_119:Encrypted at rest with the AWS-owned key, like the index: API keys are stored only as hashes, and a customer managed key would add KMS permissions to the registry role and a KMS request per pull.
  name                        = "${var.name}-accounts"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk"
  range_key                   = "sk"
  deletion_protection_enabled = var.deletion_protection

  attribute {
    name = "pk"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
  }

  # Usage is billing data: point-in-time recovery undoes a bad admin command or a bug.
  point_in_time_recovery {
    enabled = true
  }

  tags = local.tags
}
