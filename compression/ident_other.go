//go:build !linux

package compression

import (
	"fmt"
	"os"
)

// statIdentity describes the file behind fi as far as the portable FileInfo allows: size and mtime.
func statIdentity(fi os.FileInfo, withCtime bool) string {
	return fmt.Sprintf("size=%d mtime=%d", fi.Size(), fi.ModTime().UnixNano())
}
