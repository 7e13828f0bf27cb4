"""Built-in component libraries of fbp, installed as `fbp_components`.

One subpackage per library.
"""
