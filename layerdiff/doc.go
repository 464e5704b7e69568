// Package layerdiff reads a kernel-format overlayfs upper directory over a lower view, through the view's
// public API and package ovlfmt's format rules, as a change set (Changes, `docker diff`) or as the
// layer tar that commits it (Write).
package layerdiff
