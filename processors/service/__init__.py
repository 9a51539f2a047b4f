"""Operator use cases (retry, reprocess, history, companies, imports) as plain functions.

The CLI parses options, calls one of these and prints the result; tests call them directly.
"""
