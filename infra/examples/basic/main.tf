# Example root configuration: one nixery registry in one region.
#
#   terraform init
#   terraform apply -target=module.nixery.aws_ecr_repository.builder -var builder_image_uri=unused   # first time only
#   (build and push the builder image, see infra/README.md)
#   terraform apply -var builder_image_uri=<ecr_repository_url>:<tag>
#   docker pull "$(terraform output -raw registry_url)/shell/git"

terraform {
  # The module needs Terraform >= 1.9 (a validation that compares two variables).
  required_version = ">= 1.9.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = ">= 5.31, < 7.0"
    }
    random = {
      source  = "hashicorp/random"
      version = ">= 3.1, < 4.0"
    }
  }
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      project = "nixery"
    }
  }
}

module "nixery" {
  source = "../../modules/nixery"

  name              = var.name
  architecture      = var.architecture
  registry_zip_path = var.registry_zip_path
  builder_image_uri = var.builder_image_uri
  auth_enabled      = var.auth_enabled

  channel   = var.channel
  pkgs_repo = var.pkgs_repo

  log_retention_days           = var.log_retention_days
  builder_memory_mb            = var.builder_memory_mb
  builder_reserved_concurrency = var.builder_reserved_concurrency

  domain_name     = var.domain_name
  certificate_arn = var.certificate_arn
  route53_zone_id = var.route53_zone_id
}
