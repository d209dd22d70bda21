variable "region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "eu-west-1"
  nullable    = false
}

variable "name" {
  description = "Resource name prefix."
  type        = string
  default     = "nixery"
  nullable    = false
}

variable "architecture" {
  description = "x86_64 or arm64, for both functions; build the zip and the image for it."
  type        = string
  default     = "x86_64"
  nullable    = false
}

variable "registry_zip_path" {
  description = "Registry Lambda zip from `cargo lambda build --release --output-format zip -p nixery-registry-lambda` (plus --arm64 for arm64)."
  type        = string
  default     = "../../../target/lambda/nixery-registry-lambda/bootstrap.zip"
  nullable    = false
}

variable "builder_image_uri" {
  description = "Builder image in the module's ECR repository, e.g. <ecr_repository_url>:v1 (built by scripts/builder-image.sh for `architecture`)."
  type        = string
}

variable "channel" {
  description = "nixpkgs channel name or channel URL (ignored when pkgs_repo is set)."
  type        = string
  default     = "nixos-unstable"
  nullable    = false
}

variable "pkgs_repo" {
  description = "Optional git repository of a package set; replaces channel."
  type        = string
  default     = null
}

variable "log_retention_days" {
  description = "CloudWatch log retention."
  type        = number
  default     = 30
  nullable    = false
}

variable "builder_memory_mb" {
  description = "Builder Lambda memory (3008-10240 MB)."
  type        = number
  default     = 4096
  nullable    = false
}

variable "builder_reserved_concurrency" {
  description = "Cap on concurrent builds (1-1000); the account needs 100 unreserved concurrency left over."
  type        = number
  default     = 10
  nullable    = false
}

variable "auth_enabled" {
  description = "Pay per pull: tenants log in with API keys (false: anonymous pulls)."
  type        = bool
  default     = true
  nullable    = false
}

variable "domain_name" {
  description = "Optional custom domain, e.g. registry.example.com."
  type        = string
  default     = null
}

variable "certificate_arn" {
  description = "ACM certificate ARN (same region) for domain_name."
  type        = string
  default     = null
}

variable "route53_zone_id" {
  description = "Optional Route 53 zone for an alias record to the custom domain."
  type        = string
  default     = null
}
