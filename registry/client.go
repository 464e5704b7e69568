package registry

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/opencontainers/go-digest"
	ispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/imgfs/imgfs/archive"
	"github.com/imgfs/imgfs/compression"
)

// Options configure Open and Push.
type Options struct {
	// Insecure (--tls-verify=false) allows plain HTTP and TLS certificates that do not verify.
	Insecure bool
	// CertDir holds extra CA certificates (*.crt) and a client certificate (*.cert with its *.key), as
	// containers' certs.d directories do.
	CertDir string
	// Platform selects from a manifest list or index; nil means the host's.
	Platform *ispec.Platform
	// Cache is the chunk cache layer reads go through; nil: every read goes to the registry.
	Cache *Cache
	// Timeout bounds how long one read keeps retrying before it fails (default 30s).
	Timeout time.Duration
	// Logger receives one line per blob that became unavailable (and when it is back); nil discards.
	Logger *slog.Logger
}

func (o *Options) timeout() time.Duration {
	if o.Timeout > 0 {
		return o.Timeout
	}
	return 30 * time.Second
}

func (o *Options) logger() *slog.Logger {
	if o.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return o.Logger
}

// baseTransport is the HTTP transport under the authentication: system roots plus CertDir, timeouts so
// that a registry that stops answering fails a request rather than hanging it.
func (o *Options) baseTransport() (*http.Transport, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: o.Insecure} //nolint:gosec // --tls-verify=false
	if o.CertDir != "" {
		pool, err := x509.SystemCertPool()
		if err != nil {
			pool = x509.NewCertPool()
		}
		ents, err := os.ReadDir(o.CertDir)
		if err != nil {
			return nil, fmt.Errorf("--cert-dir: %w", err)
		}
		for _, e := range ents {
			p := filepath.Join(o.CertDir, e.Name())
			switch {
			case strings.HasSuffix(e.Name(), ".crt"):
				pem, err := os.ReadFile(p)
				if err != nil {
					return nil, fmt.Errorf("--cert-dir: %w", err)
				}
				if !pool.AppendCertsFromPEM(pem) {
					return nil, fmt.Errorf("--cert-dir: %s: no PEM certificate", p)
				}
			case strings.HasSuffix(e.Name(), ".cert"):
				key := strings.TrimSuffix(p, ".cert") + ".key"
				cert, err := tls.LoadX509KeyPair(p, key)
				if err != nil {
					return nil, fmt.Errorf("--cert-dir: client certificate %s: %w", p, err)
				}
				tc.Certificates = append(tc.Certificates, cert)
			}
		}
		tc.RootCAs = pool
	}
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tc,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 20 * time.Second,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   8,
		ForceAttemptHTTP2:     true,
	}, nil
}

// client is an authenticated connection to one repository.
type client struct {
	repo name.Repository
	rt   http.RoundTripper
	opts Options
}

func newClient(ctx context.Context, repo name.Repository, push bool, opts Options) (*client, error) {
	base, err := opts.baseTransport()
	if err != nil {
		return nil, err
	}
	auth, err := authn.DefaultKeychain.Resolve(repo)
	if err != nil {
		return nil, fmt.Errorf("%s: credentials: %w", repo, err)
	}
	scopes := []string{repo.Scope(transport.PullScope)}
	if push {
		scopes = []string{repo.Scope(transport.PushScope)}
	}
	rt, err := transport.NewWithContext(ctx, repo.Registry, auth, base, scopes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", repo.RegistryStr(), err)
	}
	return &client{repo: repo, rt: rt, opts: opts}, nil
}

func nameOptions(opts Options) []name.Option {
	if opts.Insecure {
		return []name.Option{name.Insecure}
	}
	return nil
}

// Image is an image opened from a registry.
type Image struct {
	*archive.Image
	// Ref is the reference as given (without docker://).
	Ref string
}

// maxManifest and maxConfig cap the documents read (as package archive caps them).
const (
	maxManifest = 4 << 20
	maxConfig   = 16 << 20
)

// Open fetches the manifest (through an index for opts.Platform) and the config of ref and returns the
// image, whose layers read their blobs lazily.
func Open(ctx context.Context, ref string, opts Options) (*Image, error) {
	r, err := name.ParseReference(ref, nameOptions(opts)...)
	if err != nil {
		return nil, fmt.Errorf("%s%s: %w", Prefix, ref, err)
	}
	where := Prefix + ref
	c, err := newClient(ctx, r.Context(), false, opts)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	ro := []remote.Option{remote.WithTransport(c.rt), remote.WithContext(ctx)}
	desc, err := remote.Get(r, ro...)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	raw, md := desc.Manifest, digest.Digest(desc.Digest.String())
	var plat *ispec.Platform
	if archive.IsIndex(raw) {
		d, err := archive.ChooseManifest(raw, opts.Platform)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", where, err)
		}
		desc, err = remote.Get(r.Context().Digest(d.Digest.String()), ro...)
		if err != nil {
			return nil, fmt.Errorf("%s: manifest %s: %w", where, d.Digest, err)
		}
		raw, md, plat = desc.Manifest, d.Digest, d.Platform
	}
	if len(raw) > maxManifest {
		return nil, fmt.Errorf("%s: manifest of %d bytes, more than %d", where, len(raw), maxManifest)
	}
	var m ispec.Manifest
	if err := jsonUnmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%s: manifest %s: %w", where, md, err)
	}
	if m.Config.Size < 0 || m.Config.Size > maxConfig {
		return nil, fmt.Errorf("%s: config %s: size %d out of range", where, m.Config.Digest, m.Config.Size)
	}
	cfg, err := c.getBlob(ctx, m.Config.Digest, m.Config.Size)
	if err != nil {
		return nil, fmt.Errorf("%s: config %s: %w", where, m.Config.Digest, err)
	}
	src := Prefix + r.Context().String()
	img, err := archive.NewImage(ctx, archive.Remote{
		Names: []string{r.Name()}, RawManifest: raw, ManifestDigest: md, RawConfig: cfg, Platform: plat, Source: src,
		Blob: func(d ispec.Descriptor) (compression.Blob, error) {
			if err := d.Digest.Validate(); err != nil {
				return compression.Blob{}, err
			}
			b := &blob{c: c, d: d.Digest, size: d.Size, cache: opts.Cache, log: opts.logger()}
			return compression.Blob{R: b, Size: d.Size, ID: "registry-blob " + string(d.Digest)}, nil
		},
	})
	if err != nil {
		return nil, err
	}
	return &Image{Image: img, Ref: ref}, nil
}

// blobURL is the URL of a blob of the repository (the transport picks the scheme the ping found).
func (c *client) blobURL(d digest.Digest) string {
	return fmt.Sprintf("%s://%s/v2/%s/blobs/%s", c.repo.Registry.Scheme(), c.repo.RegistryStr(), c.repo.RepositoryStr(), d)
}

// getBlob fetches a whole small blob and checks its digest and size.
func (c *client) getBlob(ctx context.Context, d digest.Digest, size int64) ([]byte, error) {
	if err := d.Validate(); err != nil {
		return nil, err
	}
	var out []byte
	err := c.retry(ctx, d, func(ctx context.Context) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.blobURL(d), nil)
		if err != nil {
			return 0, err
		}
		resp, err := c.rt.RoundTrip(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return resp.StatusCode, statusError(resp)
		}
		b, err := io.ReadAll(io.LimitReader(resp.Body, size+1))
		if err != nil {
			return resp.StatusCode, err
		}
		out = b
		return resp.StatusCode, nil
	})
	if err != nil {
		return nil, err
	}
	if int64(len(out)) != size || d.Algorithm().FromBytes(out) != d {
		return nil, fmt.Errorf("registry sent %d bytes that do not hash to the digest", len(out))
	}
	return out, nil
}

// statusError is the error of a response with an unexpected status.
func statusError(resp *http.Response) error {
	if err := transport.CheckError(resp, http.StatusOK, http.StatusPartialContent); err != nil {
		return err
	}
	return fmt.Errorf("unexpected status %s", resp.Status)
}

// errPermanent marks an error not worth retrying.
type errPermanent struct{ err error }

func (e errPermanent) Error() string { return e.err.Error() }
func (e errPermanent) Unwrap() error { return e.err }

// retryAfter is the delay a 429 or 503 asks for.
type retryAfter struct {
	err   error
	delay time.Duration
}

func (e retryAfter) Error() string { return e.err.Error() }
func (e retryAfter) Unwrap() error { return e.err }

// retry runs do until it succeeds, fails permanently (4xx other than 408/429) or the timeout passes;
// 429 and 5xx and network errors are retried with exponential backoff (at most 2s apart, or what
// Retry-After asks up to 10s).
func (c *client) retry(ctx context.Context, d digest.Digest, do func(context.Context) (int, error)) error {
	ctx, cancel := context.WithTimeout(ctx, c.opts.timeout())
	defer cancel()
	backoff := 100 * time.Millisecond
	for {
		status, err := do(ctx)
		if err == nil {
			return nil
		}
		var pe errPermanent
		if errors.As(err, &pe) || (status >= 400 && status < 500 && status != 408 && status != 429) {
			return err
		}
		delay := backoff
		var ra retryAfter
		if errors.As(err, &ra) && ra.delay > 0 {
			delay = min(ra.delay, 10*time.Second)
		}
		backoff = min(2*backoff, 2*time.Second)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (gave up after %s)", err, c.opts.timeout())
		case <-t.C:
		}
	}
}
