package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/imgfs/imgfs/archive"
	"github.com/imgfs/imgfs/registry"
)

// registryFlags are the flags of commands that read (or push to) a registry reference.
func registryFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "tls-verify", Value: true, Usage: "registry references: require HTTPS and verify certificates (false: plain HTTP or self-signed allowed)"},
		&cli.StringFlag{Name: "cert-dir", Usage: "registry references: `DIR` with extra CA certificates (*.crt) and a client certificate (*.cert, *.key)"},
		&cli.StringFlag{Name: "cache-size", Value: "2G", Usage: "registry references: bound of the on-disk chunk cache shared between mounts (0: none)"},
		&cli.DurationFlag{Name: "registry-timeout", Value: 30 * time.Second, Usage: "registry references: how long one read retries before it fails (EIO)"},
	}
}

// registryOptions are the registry.Options the flags give.
func registryOptions(c *cli.Context, log *slog.Logger) (registry.Options, error) {
	size, err := parseSize(c.String("cache-size"))
	if err != nil {
		return registry.Options{}, fmt.Errorf("--cache-size: %w", err)
	}
	platform, err := parsePlatform(c.String("platform"))
	if err != nil {
		return registry.Options{}, err
	}
	return registry.Options{
		Insecure: !c.Bool("tls-verify"), CertDir: c.String("cert-dir"), Platform: platform,
		Cache: registry.NewCache(cacheDir(c), size), Timeout: c.Duration("registry-timeout"), Logger: log,
	}, nil
}

// openRemote opens a registry reference as an opened image without layers.
func openRemote(ctx context.Context, c *cli.Context, ref string, log *slog.Logger) (*opened, error) {
	opts, err := registryOptions(c, log)
	if err != nil {
		return nil, err
	}
	img, err := registry.Open(ctx, ref, opts)
	if err != nil {
		return nil, err
	}
	return &opened{img: img.Image, name: registry.Prefix + ref, noVerify: c.Bool("no-verify")}, nil
}

// sourceFormat is the archive format of the source; a registry image counts as an OCI archive.
func (o *opened) sourceFormat() archive.Format {
	if o.arc == nil {
		return archive.FormatOCIArchive
	}
	return o.arc.Format()
}
