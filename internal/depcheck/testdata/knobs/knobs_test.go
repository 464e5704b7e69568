package knobs

import "testing"

var fixtures = map[string]int{} // the tests' own: theirs to set

func TestSets(t *testing.T) {
	hook = func() {}  // reported
	size++            // reported
	cache["a"] = 1    // reported
	conf.limit = 2    // reported
	fixtures["a"] = 1 // a test file's own variable
	size := 10        // a local that shadows size
	size = 11         // the local, not the package variable
	_ = size
	func() { hook := 0; hook = 1; _ = hook }()
}
