// Package overlay shows ordered image layers as one tree, the way a container sees them: OCI whiteouts
// and opaque directories applied, hardlinks resolved to one node, implied directories filled in.
//
// It is pure logic: it must not import go-fuse, return syscall.Errno, or parse manifests.
package overlay
