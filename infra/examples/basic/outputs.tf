output "registry_url" {
  description = "docker pull <registry_url>/shell/git"
  value       = module.nixery.registry_url
}

output "domain_target" {
  description = "Where to point the custom domain's DNS record (when domain_name is set)."
  value       = module.nixery.domain_target
}

output "ecr_repository_url" {
  description = "Push the builder image here."
  value       = module.nixery.ecr_repository_url
}

output "bucket" {
  description = "Blob bucket."
  value       = module.nixery.bucket
}

output "table" {
  description = "Index table."
  value       = module.nixery.table
}

output "public_url" {
  description = "Absolute registry URL (token realm: <public_url>/token)."
  value       = module.nixery.public_url
}

output "accounts_table" {
  description = "Tenants, quotas and usage (for the admin CLI)."
  value       = module.nixery.accounts_table
}

output "signing_key_parameter" {
  description = "SSM parameter holding the token signing secrets."
  value       = module.nixery.signing_key_parameter
}

output "registry_function_name" {
  description = "Registry Lambda."
  value       = module.nixery.registry_function_name
}

output "builder_function_name" {
  description = "Builder Lambda."
  value       = module.nixery.builder_function_name
}
