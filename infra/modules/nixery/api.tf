# ---------------------------------------------------------------------------------------------
# API Gateway: HTTP API (v2) with a single $default route to the registry Lambda. $default
# catches every method and path, so /v2/..., GET /token (Basic) and POST /token (OAuth2 form,
# containerd) all reach the registry's router, which alone decides what exists.
#
# Only an HTTP API works: it passes the registry's WWW-Authenticate challenge through unchanged,
# while a REST API renames it to x-amzn-Remapped-WWW-Authenticate, and then no docker/containerd
# login works (the client never sees the token realm).
#
# Timeout trade-off: an HTTP API integration times out at 30 s, a hard limit. A regional REST
# API defaults to 29 s and can be raised by a quota request (at the cost of a lower account
# throttle), but costs ~3.5x per request and adds nothing a registry needs. We choose the HTTP
# API and design around 30 s: the registry Lambda has a 29 s timeout, waits for a build at most
# build_wait_seconds (25), then answers 429 TOOMANYREQUESTS with Retry-After while the builder
# (900 s) continues; containerd/docker retry and the next pull gets the cached manifest. Blobs
# never pass through the gateway (307 to presigned S3 URLs), so payload limits do not apply.
# ---------------------------------------------------------------------------------------------

resource "aws_apigatewayv2_api" "registry" {
  name          = var.name
  description   = "nixery registry (OCI distribution API, pull only)"
  protocol_type = "HTTP"
  # With a custom domain, optionally force clients onto it.
  disable_execute_api_endpoint = var.domain_name != null && var.disable_execute_api_endpoint
  tags                         = local.tags
}

resource "aws_apigatewayv2_integration" "registry" {
  api_id                 = aws_apigatewayv2_api.registry.id
  integration_type       = "AWS_PROXY"
  integration_uri        = aws_lambda_function.registry.invoke_arn
  payload_format_version = "2.0"
  timeout_milliseconds   = 30000
}

resource "aws_apigatewayv2_route" "default" {
  #checkov:skip=CKV_AWS_309:Clients authenticate with the registry token flow (401 challenge, /token, bearer or Basic), which the registry checks itself; a gateway authorizer cannot answer the challenge, and with auth_enabled = false the registry is public on purpose. Stage throttling bounds abuse.
  api_id    = aws_apigatewayv2_api.registry.id
  route_key = "$default"
  target    = "integrations/${aws_apigatewayv2_integration.registry.id}"
}

resource "aws_cloudwatch_log_group" "api" {
  #checkov:skip=CKV_AWS_158:Access logs hold request lines and source IPs; the default CloudWatch encryption suffices.
  #checkov:skip=CKV_AWS_338:Retention is a variable (log_retention_days, default 30).
  name              = local.api_log_group_name
  retention_in_days = var.log_retention_days
  tags              = local.tags
}

resource "aws_apigatewayv2_stage" "default" {
  api_id      = aws_apigatewayv2_api.registry.id
  name        = "$default"
  auto_deploy = true

  default_route_settings {
    throttling_rate_limit  = var.throttle_rate_limit
    throttling_burst_limit = var.throttle_burst_limit
  }

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.api.arn
    format = jsonencode({
      requestId          = "$context.requestId"
      ip                 = "$context.identity.sourceIp"
      userAgent          = "$context.identity.userAgent"
      requestTime        = "$context.requestTime"
      method             = "$context.httpMethod"
      path               = "$context.path"
      status             = "$context.status"
      responseLength     = "$context.responseLength"
      integrationLatency = "$context.integrationLatency"
      integrationError   = "$context.integrationErrorMessage"
    })
  }

  tags = local.tags
}

resource "aws_lambda_permission" "api" {
  statement_id  = "AllowAPIGatewayInvoke"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.registry.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.registry.execution_arn}/*"
}

# ---------------------------------------------------------------------------------------------
# Optional custom domain (docker pull registry.example.com/shell/git). The ACM certificate must
# be in the same region as the API (regional endpoint). DNS: point domain_name at the
# `domain_target` output (CNAME or alias), or give route53_zone_id to have the record made here.
# ---------------------------------------------------------------------------------------------

resource "aws_apigatewayv2_domain_name" "registry" {
  count       = var.domain_name == null ? 0 : 1
  domain_name = var.domain_name

  domain_name_configuration {
    certificate_arn = var.certificate_arn
    endpoint_type   = "REGIONAL"
    security_policy = "TLS_1_2"
  }

  tags = local.tags

  lifecycle {
    precondition {
      condition     = var.certificate_arn != null
      error_message = "certificate_arn is required when domain_name is set."
    }
  }
}

resource "aws_apigatewayv2_api_mapping" "registry" {
  count       = var.domain_name == null ? 0 : 1
  api_id      = aws_apigatewayv2_api.registry.id
  domain_name = aws_apigatewayv2_domain_name.registry[0].id
  stage       = aws_apigatewayv2_stage.default.id
}

resource "aws_route53_record" "registry" {
  count   = var.domain_name != null && var.route53_zone_id != null ? 1 : 0
  zone_id = var.route53_zone_id
  name    = var.domain_name
  type    = "A"

  alias {
    name                   = aws_apigatewayv2_domain_name.registry[0].domain_name_configuration[0].target_domain_name
    zone_id                = aws_apigatewayv2_domain_name.registry[0].domain_name_configuration[0].hosted_zone_id
    evaluate_target_health = false
  }
}
