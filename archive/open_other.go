//go:build !unix

package archive

// openFlags are added to O_RDONLY when opening source files.
const openFlags = 0
