"""The Faust app: topics, agents, tables, web views. Thin glue over `pipeline/`."""
