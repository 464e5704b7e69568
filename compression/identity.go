package compression

import (
	"crypto/sha256"
	"os"
)

// rawIdentity identifies a decompressed copy in the cache. It leaves out the ctime, which a rename into
// place may change; a write changes the mtime.
func rawIdentity(f *os.File) ([32]byte, error) {
	fi, err := f.Stat()
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256([]byte(statIdentity(fi, false))), nil
}

// FileIdentity describes the file f as it is now (device, inode, size, mtime, ctime where the system
// has them), for keys that must change when the file's bytes may have.
func FileIdentity(f *os.File) (string, error) {
	fi, err := f.Stat()
	if err != nil {
		return "", err
	}
	return statIdentity(fi, true), nil
}
