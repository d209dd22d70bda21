# ---------------------------------------------------------------------------------------------
# Token signing key for pay per pull. /token issues short-lived bearer tokens (token_ttl_seconds)
# signed with this secret; the registry reads it with ssm:GetParameter (NIXERY_SIGNING_KEY_PARAMETER).
#
# The value is one or more whitespace-separated secrets: the first signs new tokens, all of them
# verify. Rotation without logging anyone out (aws ssm put-parameter --overwrite --type
# SecureString --name <signing_key_parameter output> --value ...):
#   1. put "OLD NEW": the new secret verifies, the old one still signs;
#   2. once every registry instance has read it (a warm instance keeps what it read; any change
#      of the function's configuration replaces them), put "NEW OLD": the new secret signs;
#   3. wait token_ttl_seconds, until the last tokens signed with OLD have expired, put "NEW".
# (With a single registry instance, or when a few 401s do not matter, step 1 can be skipped.)
# Terraform sets the first value only (ignore_changes below), so a rotation is not undone by
# the next apply.
#
# Encryption: the AWS managed key alias/aws/ssm. Its key policy lets every principal of the
# account decrypt through SSM, so the registry role needs ssm:GetParameter and no kms:Decrypt.
# The flip side: any principal of the account allowed ssm:GetParameter on this name can read the
# secret; this module grants it to the registry role only.
# ---------------------------------------------------------------------------------------------

# The generated secret is stored in the Terraform state in plain text (random_password keeps its
# result there, and so does aws_ssm_parameter's value). The state must therefore be encrypted and
# access-controlled like the secret itself (e.g. an S3 backend with SSE and a restrictive bucket
# policy). After a rotation the state holds only the first, retired secret.
resource "random_password" "signing_key" {
  length  = 64
  special = false
}

resource "aws_ssm_parameter" "signing_key" {
  #checkov:skip=CKV_AWS_337:The AWS managed key alias/aws/ssm is enough here: only the registry role is granted ssm:GetParameter on this parameter, and a customer managed key would add a key policy, kms:Decrypt on the role and a monthly key cost for one 64-character secret.
  name        = "/${var.name}/token-signing-key"
  description = "nixery: secrets that sign registry bearer tokens; the first signs, all verify (whitespace-separated)."
  type        = "SecureString"
  value       = random_password.signing_key.result
  tags        = local.tags

  lifecycle {
    # Rotations are made outside Terraform (see above).
    ignore_changes = [value]
  }
}
