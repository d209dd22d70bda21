# ---- naming ---------------------------------------------------------------------------------

variable "name" {
  description = "Prefix for every resource name (functions, table, bucket, API, roles)."
  type        = string
  default     = "nixery"
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.name))
    error_message = "name must be 2-31 characters of lowercase letters, digits and '-', starting with a letter."
  }
}

variable "tags" {
  description = "Tags added to every taggable resource."
  type        = map(string)
  default     = {}
}

# ---- code artifacts -------------------------------------------------------------------------

variable "registry_zip_path" {
  description = "Path to the registry Lambda zip built by `cargo lambda build --release --arm64 --output-format zip -p nixery-registry-lambda` (target/lambda/nixery-registry-lambda/bootstrap.zip)."
  type        = string
}

variable "builder_image_uri" {
  description = "URI of the builder image (linux/arm64) in this module's ECR repository, with a tag or @sha256 digest, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/nixery-builder:v1. See the ecr_repository_url output."
  type        = string
}

variable "ecr_keep_images" {
  description = "Number of builder images kept in ECR; older ones expire."
  type        = number
  default     = 10
}

# ---- package source and Nix -------------------------------------------------------------------

variable "channel" {
  description = "nixpkgs channel used when pkgs_repo is null (NIXERY_CHANNEL)."
  type        = string
  default     = "nixos-unstable"
}

variable "pkgs_repo" {
  description = "Git repository of a package set (NIXERY_PKGS_REPO); when set it replaces channel, and the image tag is used as the git ref."
  type        = string
  default     = null
}

variable "binary_cache_url" {
  description = "Binary cache the builder fetches .narinfo and NAR files from (NIXERY_BINARY_CACHE)."
  type        = string
  default     = "https://cache.nixos.org"
}

variable "trusted_public_keys" {
  description = "Public keys that must sign the narinfo files (NIXERY_TRUSTED_KEYS, space-separated)."
  type        = list(string)
  default     = ["cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="]
  validation {
    condition     = length(var.trusted_public_keys) > 0
    error_message = "At least one trusted public key is required: unsigned store paths are refused."
  }
}

variable "layer_budget" {
  description = "Maximum number of store-path layers per image (NIXERY_LAYER_BUDGET); the image adds a customisation layer, and registries accept at most 125 layers."
  type        = number
  default     = 94
  validation {
    condition     = var.layer_budget >= 1 && var.layer_budget <= 124
    error_message = "layer_budget must be between 1 and 124."
  }
}

variable "nix_timeout_seconds" {
  description = "Time limit for one Nix evaluation in the builder (NIXERY_NIX_TIMEOUT); must leave time for packing within builder_timeout_seconds."
  type        = number
  default     = 300
}

# ---- registry behaviour ---------------------------------------------------------------------

variable "build_wait_seconds" {
  description = "How long a pull waits for a running build before answering 429 with Retry-After (NIXERY_BUILD_WAIT). Must stay under the 29 s registry timeout, itself under API Gateway's 30 s."
  type        = number
  default     = 25
  validation {
    condition     = var.build_wait_seconds >= 0 && var.build_wait_seconds <= 27
    error_message = "build_wait_seconds must be between 0 and 27 (registry Lambda timeout is 29 s)."
  }
}

variable "presign_ttl_seconds" {
  description = "Lifetime of the presigned S3 GET URLs that blob requests are redirected to (NIXERY_PRESIGN_TTL)."
  type        = number
  default     = 300
  validation {
    condition     = var.presign_ttl_seconds >= 30 && var.presign_ttl_seconds <= 3600
    error_message = "presign_ttl_seconds must be between 30 and 3600 (the role's session credentials bound it anyway)."
  }
}

variable "rust_log" {
  description = "RUST_LOG filter for both functions."
  type        = string
  default     = "info"
}

# ---- sizing ---------------------------------------------------------------------------------

variable "registry_memory_mb" {
  description = "Memory of the registry Lambda. It only routes requests, reads DynamoDB and presigns URLs; 512 MB gives fast cold starts at low cost."
  type        = number
  default     = 512
  validation {
    condition     = var.registry_memory_mb >= 128 && var.registry_memory_mb <= 10240
    error_message = "registry_memory_mb must be between 128 and 10240."
  }
}

variable "builder_memory_mb" {
  description = "Memory of the builder Lambda (CPU scales with it: ~1 vCPU per 1769 MB, 6 vCPUs at 10240). Nix evaluation of nixpkgs needs 1-2 GB; gzip and SHA-256 of layers are CPU bound."
  type        = number
  default     = 4096
  validation {
    condition     = var.builder_memory_mb >= 3008 && var.builder_memory_mb <= 10240
    error_message = "builder_memory_mb must be between 3008 and 10240."
  }
}

variable "builder_ephemeral_storage_mb" {
  description = "Size of the builder's /tmp (Nix evaluation state: the package set source and caches; NARs are streamed, not stored)."
  type        = number
  default     = 10240
  validation {
    condition     = var.builder_ephemeral_storage_mb >= 512 && var.builder_ephemeral_storage_mb <= 10240
    error_message = "builder_ephemeral_storage_mb must be between 512 and 10240."
  }
}

variable "builder_timeout_seconds" {
  description = "Timeout of the builder Lambda (Lambda's maximum is 900 s)."
  type        = number
  default     = 900
  validation {
    condition     = var.builder_timeout_seconds >= 60 && var.builder_timeout_seconds <= 900
    error_message = "builder_timeout_seconds must be between 60 and 900."
  }
}

variable "registry_reserved_concurrency" {
  description = "Reserved concurrency of the registry Lambda; null leaves it unreserved."
  type        = number
  default     = null
}

variable "builder_reserved_concurrency" {
  description = "Reserved concurrency of the builder Lambda, a cap on concurrent builds (and their cost); null leaves it unreserved."
  type        = number
  default     = null
}

variable "throttle_rate_limit" {
  description = "API Gateway steady-state request rate (requests per second) for the whole registry."
  type        = number
  default     = 100
}

variable "throttle_burst_limit" {
  description = "API Gateway burst limit (requests)."
  type        = number
  default     = 200
}

# ---- logs -----------------------------------------------------------------------------------

variable "log_retention_days" {
  description = "Retention of the CloudWatch log groups (both functions and API access logs)."
  type        = number
  default     = 30
  validation {
    condition     = contains([1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a value CloudWatch Logs accepts (1, 3, 5, 7, 14, 30, 60, 90, ...)."
  }
}

# ---- custom domain (optional) ---------------------------------------------------------------

variable "domain_name" {
  description = "Optional custom domain for the registry (e.g. registry.example.com). null: use the execute-api host."
  type        = string
  default     = null
}

variable "certificate_arn" {
  description = "ACM certificate ARN for domain_name, in the same region as the API. Required when domain_name is set."
  type        = string
  default     = null
}

variable "route53_zone_id" {
  description = "Optional Route 53 hosted zone in which to create an alias record for domain_name."
  type        = string
  default     = null
}

variable "disable_execute_api_endpoint" {
  description = "With a custom domain, turn off the default execute-api endpoint so that clients use the domain."
  type        = bool
  default     = false
}

# ---- lifecycle ------------------------------------------------------------------------------

variable "force_destroy" {
  description = "Allow terraform destroy to delete a non-empty bucket and ECR repository."
  type        = bool
  default     = false
}

variable "deletion_protection" {
  description = "DynamoDB deletion protection for the index table."
  type        = bool
  default     = false
}
