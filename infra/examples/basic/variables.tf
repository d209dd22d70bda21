variable "region" {
  description = "AWS region to deploy into."
  type        = string
  default     = "eu-west-1"
}

variable "name" {
  description = "Resource name prefix."
  type        = string
  default     = "nixery"
}

variable "registry_zip_path" {
  description = "Registry Lambda zip from `cargo lambda build --release --arm64 --output-format zip -p nixery-registry-lambda`."
  type        = string
  default     = "../../../target/lambda/nixery-registry-lambda/bootstrap.zip"
}

variable "builder_image_uri" {
  description = "Builder image in the module's ECR repository, e.g. <ecr_repository_url>:v1 (linux/arm64)."
  type        = string
}

variable "channel" {
  description = "nixpkgs channel (ignored when pkgs_repo is set)."
  type        = string
  default     = "nixos-unstable"
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
}

variable "builder_memory_mb" {
  description = "Builder Lambda memory (3008-10240 MB)."
  type        = number
  default     = 4096
}

variable "builder_reserved_concurrency" {
  description = "Cap on concurrent builds; null leaves the builder unreserved."
  type        = number
  default     = null
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
