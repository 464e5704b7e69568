// Package registry reads images from (and pushes them to) registries speaking the distribution API v2,
// through go-containerregistry's name, authn, transport and remote packages: references, credentials
// (authn.DefaultKeychain: $DOCKER_CONFIG, ~/.docker/config.json and its credential helpers, else
// $REGISTRY_AUTH_FILE or containers/auth.json), Basic and Bearer token auth, TLS with the system roots
// plus --cert-dir, plain HTTP or unverified TLS with --tls-verify=false.
//
// An opened reference is an archive.Image (archive.NewImage checks its manifest and config like an
// archive's) whose layer blobs are io.ReaderAt's: every read is served from the chunk cache or by Range
// GETs of whole chunks through the authenticated transport, retried with backoff on 429 (Retry-After),
// 5xx and dropped connections until Options.Timeout, then an error naming the blob and the status.
//
// It must not know inodes, FUSE or union rules; it never interprets a layer's contents.
package registry
