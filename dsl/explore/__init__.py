"""Exploration of the configuration space: every policy compared with `architectural` (or another policy),
divergences grouped into classes, one minimal `.svm` counterexample per class (`svmdsl explore`)."""
