"""The closed loop: replaying traffic, request lineage, the end-to-end demo."""
