"""Procedural generators for the tasks whose data can be made instead of downloaded."""
