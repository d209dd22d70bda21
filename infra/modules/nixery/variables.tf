# ---- naming ---------------------------------------------------------------------------------

variable "name" {
  description = "Prefix for every resource name (functions, table, bucket, API, roles)."
  type        = string
  default     = "nixery"
  nullable    = false
  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.name))
    error_message = "name must be 2-31 characters of lowercase letters, digits and '-', starting with a letter."
  }
}

variable "tags" {
  description = "Tags added to every taggable resource."
  type        = map(string)
  default     = {}
  nullable    = false
}

# ---- code artifacts -------------------------------------------------------------------------

variable "architecture" {
  description = "Instruction set of both functions: x86_64 (the one tested in CI) or arm64 (Graviton, about 20% cheaper per GB-second). The registry zip and the builder image must be built for it (see infra/README.md)."
  type        = string
  default     = "x86_64"
  nullable    = false
  validation {
    condition     = contains(["x86_64", "arm64"], var.architecture)
    error_message = "architecture must be \"x86_64\" or \"arm64\" (the values Lambda accepts)."
  }
}

variable "registry_zip_path" {
  description = "Path to the registry Lambda zip built by `cargo lambda build --release --output-format zip -p nixery-registry-lambda` (add --arm64 when architecture = \"arm64\"), i.e. target/lambda/nixery-registry-lambda/bootstrap.zip."
  type        = string
}

variable "builder_image_uri" {
  description = "URI of the builder image (a single-platform image for `architecture`, built by scripts/builder-image.sh) in this module's ECR repository, with a tag or @sha256 digest, e.g. 123456789012.dkr.ecr.eu-west-1.amazonaws.com/nixery-builder:v1. See the ecr_repository_url output."
  type        = string
}

variable "ecr_keep_images" {
  description = "Number of builder images kept in ECR; older ones expire."
  type        = number
  default     = 10
  nullable    = false
  validation {
    condition     = var.ecr_keep_images >= 1 && var.ecr_keep_images <= 1000 && floor(var.ecr_keep_images) == var.ecr_keep_images
    error_message = "ecr_keep_images must be a whole number between 1 and 1000 (at least the image the builder function runs)."
  }
}

# ---- package source and Nix -------------------------------------------------------------------

variable "channel" {
  description = "nixpkgs channel used when pkgs_repo is null (NIXERY_CHANNEL, given to both functions): either a channel name such as nixos-unstable or nixos-25.05, resolved against https://channels.nixos.org/<name>, or the full http(s) URL of a channel. The channel moves; the registry re-resolves it to a commit every pin_refresh_seconds."
  type        = string
  default     = "nixos-unstable"
  nullable    = false
  validation {
    condition     = can(regex("^([A-Za-z0-9][A-Za-z0-9._-]*|https?://[^[:space:]]+)$", var.channel))
    error_message = "channel must be a channel name (letters, digits, '.', '_', '-') or an http(s) URL."
  }
}

variable "pkgs_repo" {
  description = "Git repository of a package set (NIXERY_PKGS_REPO, given to both functions); when set it replaces channel, and the image tag is used as the git ref (a branch is re-resolved to a commit every pin_refresh_seconds)."
  type        = string
  default     = null
}

variable "binary_cache_url" {
  description = "Binary cache the builder fetches .narinfo and NAR files from (NIXERY_BINARY_CACHE)."
  type        = string
  default     = "https://cache.nixos.org"
  nullable    = false
}

variable "trusted_public_keys" {
  description = "Public keys that must sign the narinfo files (NIXERY_TRUSTED_KEYS, space-separated)."
  type        = list(string)
  default     = ["cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY="]
  nullable    = false
  validation {
    condition     = length(var.trusted_public_keys) > 0
    error_message = "At least one trusted public key is required: unsigned store paths are refused."
  }
}

variable "layer_budget" {
  description = "Maximum number of store-path layers per image (NIXERY_LAYER_BUDGET); the image adds a customisation layer, and registries accept at most 125 layers."
  type        = number
  default     = 94
  nullable    = false
  validation {
    condition     = var.layer_budget >= 1 && var.layer_budget <= 124
    error_message = "layer_budget must be between 1 and 124."
  }
}

variable "nix_timeout_seconds" {
  description = "Time limit for one Nix evaluation in the builder (NIXERY_NIX_TIMEOUT); must stay under builder_timeout_seconds to leave time for fetching, packing and uploading layers."
  type        = number
  default     = 300
  nullable    = false
  # Referring to another variable in a validation needs Terraform >= 1.9 (versions.tf). A Nix
  # timeout at or past the function timeout would let Lambda kill the builder mid-evaluation,
  # before it can record the build error that the next pull reports.
  validation {
    condition     = var.nix_timeout_seconds >= 10 && floor(var.nix_timeout_seconds) == var.nix_timeout_seconds && var.nix_timeout_seconds < var.builder_timeout_seconds
    error_message = "nix_timeout_seconds must be a whole number of at least 10 and strictly less than builder_timeout_seconds."
  }
}

# ---- registry behaviour ---------------------------------------------------------------------

variable "build_wait_seconds" {
  description = "How long a pull waits for a running build before answering 429 with Retry-After (NIXERY_BUILD_WAIT). Must stay under the 29 s registry timeout, itself under API Gateway's 30 s."
  type        = number
  default     = 25
  nullable    = false
  validation {
    condition     = var.build_wait_seconds >= 0 && var.build_wait_seconds <= 27
    error_message = "build_wait_seconds must be between 0 and 27 (registry Lambda timeout is 29 s)."
  }
}

variable "presign_ttl_seconds" {
  description = "Lifetime of the presigned S3 GET URLs that blob requests are redirected to (NIXERY_PRESIGN_TTL)."
  type        = number
  default     = 300
  nullable    = false
  validation {
    condition     = var.presign_ttl_seconds >= 30 && var.presign_ttl_seconds <= 3600
    error_message = "presign_ttl_seconds must be between 30 and 3600 (the role's session credentials bound it anyway)."
  }
}

variable "rust_log" {
  description = "RUST_LOG filter for both functions."
  type        = string
  default     = "info"
  nullable    = false
}

# ---- pay per pull ---------------------------------------------------------------------------

variable "auth_enabled" {
  description = "Require tenants to log in (NIXERY_AUTH): a 401 challenge pointing at /token on every unauthenticated request, quotas and usage counted per tenant in the accounts table. false serves everyone anonymously."
  type        = bool
  default     = true
  nullable    = false
}

variable "token_ttl_seconds" {
  description = "Lifetime of the bearer tokens issued by /token (NIXERY_TOKEN_TTL). Also how long to wait between the steps of a signing key rotation (see auth.tf)."
  type        = number
  default     = 300
  nullable    = false
  validation {
    condition     = var.token_ttl_seconds >= 60 && var.token_ttl_seconds <= 3600 && floor(var.token_ttl_seconds) == var.token_ttl_seconds
    error_message = "token_ttl_seconds must be a whole number between 60 and 3600 (clients fetch a new token when one expires)."
  }
}

variable "pin_refresh_seconds" {
  description = "How often the registry re-resolves a moving package source (a channel, or a git branch used as tag) to a commit (NIXERY_PIN_TTL). Manifests are cached per commit, so a new commit means new builds; 0 resolves on every pull."
  type        = number
  default     = 300
  nullable    = false
  validation {
    condition     = var.pin_refresh_seconds >= 0 && var.pin_refresh_seconds <= 86400 && floor(var.pin_refresh_seconds) == var.pin_refresh_seconds
    error_message = "pin_refresh_seconds must be a whole number between 0 and 86400 (one day)."
  }
}

# ---- sizing ---------------------------------------------------------------------------------

variable "registry_memory_mb" {
  description = "Memory of the registry Lambda. It only routes requests, reads DynamoDB and presigns URLs; 512 MB gives fast cold starts at low cost."
  type        = number
  default     = 512
  nullable    = false
  validation {
    condition     = var.registry_memory_mb >= 128 && var.registry_memory_mb <= 10240
    error_message = "registry_memory_mb must be between 128 and 10240."
  }
}

variable "builder_memory_mb" {
  description = "Memory of the builder Lambda (CPU scales with it: ~1 vCPU per 1769 MB, 6 vCPUs at 10240). Nix evaluation of nixpkgs needs 1-2 GB; gzip and SHA-256 of layers are CPU bound."
  type        = number
  default     = 4096
  nullable    = false
  validation {
    condition     = var.builder_memory_mb >= 3008 && var.builder_memory_mb <= 10240
    error_message = "builder_memory_mb must be between 3008 and 10240."
  }
}

variable "builder_ephemeral_storage_mb" {
  description = "Size of the builder's /tmp (Nix evaluation state: the package set source and caches; NARs are streamed, not stored)."
  type        = number
  default     = 10240
  nullable    = false
  validation {
    condition     = var.builder_ephemeral_storage_mb >= 512 && var.builder_ephemeral_storage_mb <= 10240
    error_message = "builder_ephemeral_storage_mb must be between 512 and 10240."
  }
}

variable "builder_timeout_seconds" {
  description = "Timeout of the builder Lambda (Lambda's maximum is 900 s)."
  type        = number
  default     = 900
  nullable    = false
  validation {
    condition     = var.builder_timeout_seconds >= 60 && var.builder_timeout_seconds <= 900
    error_message = "builder_timeout_seconds must be between 60 and 900."
  }
}

variable "registry_reserved_concurrency" {
  description = "Reserved concurrency of the registry Lambda; null leaves it unreserved (API Gateway throttling bounds the rate instead)."
  type        = number
  default     = null
  # 0 would switch the registry off; use throttling or remove the API mapping for that.
  validation {
    condition     = var.registry_reserved_concurrency == null ? true : (var.registry_reserved_concurrency >= 1 && var.registry_reserved_concurrency <= 1000 && floor(var.registry_reserved_concurrency) == var.registry_reserved_concurrency)
    error_message = "registry_reserved_concurrency must be null or a whole number between 1 and 1000."
  }
}

variable "builder_reserved_concurrency" {
  description = "Reserved concurrency of the builder Lambda: the most builds that run at once, and so a cap on build cost. The registry's build leases rely on it to bound parallel builds. Lambda keeps 100 of the account's concurrency unreserved, so an account still at the initial quota of 10 must ask for a higher one first."
  type        = number
  default     = 10
  nullable    = false
  validation {
    condition     = var.builder_reserved_concurrency >= 1 && var.builder_reserved_concurrency <= 1000 && floor(var.builder_reserved_concurrency) == var.builder_reserved_concurrency
    error_message = "builder_reserved_concurrency must be a whole number between 1 and 1000."
  }
}

variable "throttle_rate_limit" {
  description = "API Gateway steady-state request rate (requests per second) for the whole registry."
  type        = number
  default     = 100
  nullable    = false
  # 10000 is API Gateway's default account-level rate quota per region.
  validation {
    condition     = var.throttle_rate_limit > 0 && var.throttle_rate_limit <= 10000
    error_message = "throttle_rate_limit must be greater than 0 and at most 10000 requests per second."
  }
}

variable "throttle_burst_limit" {
  description = "API Gateway burst limit (requests)."
  type        = number
  default     = 200
  nullable    = false
  # 5000 is API Gateway's default account-level burst quota per region.
  validation {
    condition     = var.throttle_burst_limit >= 1 && var.throttle_burst_limit <= 5000 && floor(var.throttle_burst_limit) == var.throttle_burst_limit
    error_message = "throttle_burst_limit must be a whole number between 1 and 5000."
  }
}

# ---- logs -----------------------------------------------------------------------------------

variable "log_retention_days" {
  description = "Retention of the CloudWatch log groups (both functions and API access logs)."
  type        = number
  default     = 30
  nullable    = false
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
  nullable    = false
}

# ---- lifecycle ------------------------------------------------------------------------------

variable "force_destroy" {
  description = "Allow terraform destroy to delete a non-empty bucket and ECR repository."
  type        = bool
  default     = false
  nullable    = false
}

variable "deletion_protection" {
  description = "DynamoDB deletion protection for both tables (index and accounts). Turn it on in production: the accounts table holds tenants and usage, which cannot be rebuilt."
  type        = bool
  default     = false
  nullable    = false
}
