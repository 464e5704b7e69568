package registry

import (
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
)

// Prefix marks a registry reference: docker://HOST/REPO:TAG or docker://HOST/REPO@sha256:….
const Prefix = "docker://"

// IsReference says whether arg names an image in a registry: it has the docker:// prefix, or it is not
// an existing path and parses as a reference whose first component is a registry host (has a "." or a
// ":" or is "localhost"). It returns the reference without the prefix.
func IsReference(arg string) (string, bool) {
	if s, ok := strings.CutPrefix(arg, Prefix); ok {
		return s, true
	}
	if _, err := os.Lstat(arg); err == nil {
		return "", false
	}
	host, _, ok := strings.Cut(arg, "/")
	if !ok || !(strings.ContainsAny(host, ".:") || host == "localhost") {
		return "", false
	}
	if _, err := name.ParseReference(arg, name.StrictValidation); err != nil {
		return "", false
	}
	return arg, true
}
