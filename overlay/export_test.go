package overlay

// Test-only entry points: exported for the tests of this package, not part of its API.

// Path returns a path of node n for messages: the path of its owning entry ("a/b/c", "" for the root).
// For a hard-linked file that is the target's own path, which a higher layer may have hidden. ok is false
// for a node the view never hands out. Only tests use it; the view's own messages call lowerPath or the
// upper state's path.
func (v *View) Path(n Node) (string, bool) {
	if v.up != nil {
		return v.up.path(n)
	}
	return v.lowerPath(n)
}
