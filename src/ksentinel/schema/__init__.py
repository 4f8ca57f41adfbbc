"""Kaltura's XML API schema (``api_schema.php``): a small model, the parser, and OpenAPI 3.1 output."""
