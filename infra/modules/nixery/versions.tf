terraform {
  # >= 1.9: nix_timeout_seconds is validated against builder_timeout_seconds, and a validation
  # condition may refer to another variable only since Terraform 1.9.
  required_version = ">= 1.9.0"

  required_providers {
    aws = {
      source = "hashicorp/aws"
      # logging_config on aws_lambda_function needs >= 5.31.
      version = ">= 5.31, < 7.0"
    }
    random = {
      source = "hashicorp/random"
      # random_password with `special` and a sensitive `result`.
      version = ">= 3.1, < 4.0"
    }
  }
}
