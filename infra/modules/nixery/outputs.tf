output "registry_url" {
  description = "Registry host for docker, without scheme: docker pull <registry_url>/shell/git"
  value       = var.domain_name != null ? var.domain_name : trimsuffix(trimprefix(aws_apigatewayv2_api.registry.api_endpoint, "https://"), "/")
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
