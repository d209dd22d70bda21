output "registry_url" {
  description = "Registry host for docker, without scheme: docker pull <registry_url>/shell/git"
  value       = var.domain_name != null ? var.domain_name : trimsuffix(trimprefix(aws_apigatewayv2_api.registry.api_endpoint, "https://"), "/")
}

output "public_url" {
  description = "Absolute base URL of the registry (NIXERY_PUBLIC_URL; the token realm is <public_url>/token)."
  value       = local.public_url
}

output "api_endpoint" {
  description = "Default execute-api endpoint of the HTTP API (with scheme)."
  value       = aws_apigatewayv2_api.registry.api_endpoint
}

output "domain_target" {
  description = "With a custom domain: the regional API Gateway host to point a CNAME/alias at."
  value       = var.domain_name != null ? aws_apigatewayv2_domain_name.registry[0].domain_name_configuration[0].target_domain_name : null
}

output "bucket" {
  description = "S3 bucket holding the blobs."
  value       = aws_s3_bucket.blobs.id
}

output "table" {
  description = "DynamoDB index table."
  value       = aws_dynamodb_table.index.name
}

output "accounts_table" {
  description = "DynamoDB table of tenants, quotas and usage (what the admin CLI reads and writes)."
  value       = aws_dynamodb_table.accounts.name
}

output "signing_key_parameter" {
  description = "SSM parameter (SecureString) holding the token signing secrets; rotate it as auth.tf explains."
  value       = aws_ssm_parameter.signing_key.name
}

output "registry_function_name" {
  description = "Registry Lambda function name."
  value       = aws_lambda_function.registry.function_name
}

output "builder_function_name" {
  description = "Builder Lambda function name."
  value       = aws_lambda_function.builder.function_name
}

output "ecr_repository_url" {
  description = "ECR repository for the builder image (push here, then set builder_image_uri)."
  value       = aws_ecr_repository.builder.repository_url
}
