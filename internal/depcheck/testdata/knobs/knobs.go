package knobs

// Variables a test must not set: production code reads them.
var (
	hook  func()
	size  = 4
	cache = map[string]int{}
	conf  struct{ limit int }
)

var _ = hook
