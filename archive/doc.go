// Package archive reads container image archives: docker-save tarballs (legacy and Docker 25+), OCI image
// layouts as directories or tars, any of them wrapped in gzip or zstd. It finds the images, their
// manifests, configs and platforms, and hands out layer blobs as byte ranges of the source.
//
// It must not know inodes, FUSE or union rules.
package archive
