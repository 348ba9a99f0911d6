package imageimport

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
)

// pull fetches the image for linux/hostArch from a registry. It reuses
// the layout code: manifests and indexes are chosen the same way, and the
// layers go through the same verification as local ones.
func pull(ctx context.Context, ref name.Reference, ws *workspace) (*Image, error) {
	repo := ref.Context()
	opts := []remote.Option{
		remote.WithContext(ctx),
		remote.WithAuthFromKeychain(authn.DefaultKeychain),
		remote.WithUserAgent("ouro-imageimport"),
	}
	fail := func(err error) error { return registryError(ctx, ref, err) }

	top, err := remote.Get(ref, opts...)
	if err != nil {
		return nil, fail(err)
	}
	// The top-level manifest is pinned by the digest the registry gave, so
	// a tag moved during the pull cannot mix two images.
	topDesc := descriptor{MediaType: string(top.MediaType), Digest: top.Digest.String(), Size: top.Size}
	read := func(d descriptor, limit int64) ([]byte, error) {
		if d.Digest == topDesc.Digest {
			if d.Size > limit {
				return nil, fmt.Errorf("manifest %s is %d bytes, more than the %d allowed", d.Digest, d.Size, limit)
			}
			return top.Manifest, nil
		}
		if err := checkDigest(d.Digest); err != nil {
			return nil, err
		}
		if d.Size > limit {
			return nil, fmt.Errorf("manifest %s is %d bytes, more than the %d allowed", d.Digest, d.Size, limit)
		}
		got, err := remote.Get(repo.Digest(d.Digest), opts...)
		if err != nil {
			return nil, fail(err)
		}
		if err := verifyBytes(got.Manifest, d.Digest); err != nil {
			return nil, err
		}
		return got.Manifest, nil
	}
	if err := verifyBytes(top.Manifest, topDesc.Digest); err != nil {
		return nil, err
	}
	m, err := resolveManifest([]descriptor{topDesc}, read, ref.Name(), 0)
	if err != nil {
		return nil, err
	}
	if m.Config == nil {
		return nil, errors.New("image manifest has no config")
	}
	rawConfig, err := fetchBlob(ctx, repo, *m.Config, opts, fail)
	if err != nil {
		return nil, fmt.Errorf("image config: %w", err)
	}
	layers := make([]layerSource, len(m.Layers))
	for i, d := range m.Layers {
		if err := checkDigest(d.Digest); err != nil {
			return nil, fmt.Errorf("layer %d: %w", i+1, err)
		}
		layers[i] = layerSource{
			want: layerWant{Digest: d.Digest, Size: d.Size, MediaType: d.MediaType},
			open: func() (io.ReadCloser, error) {
				l, err := remote.Layer(repo.Digest(d.Digest), opts...)
				if err != nil {
					return nil, fail(err)
				}
				rc, err := l.Compressed()
				if err != nil {
					return nil, fail(err)
				}
				return rc, nil
			},
		}
	}
	return assemble(ctx, ws, rawConfig, layers, ref.Name())
}

// fetchBlob reads a small blob (an image config) and verifies it.
func fetchBlob(ctx context.Context, repo name.Repository, d descriptor, opts []remote.Option, fail func(error) error) ([]byte, error) {
	if err := checkDigest(d.Digest); err != nil {
		return nil, err
	}
	if d.Size > maxConfigSize {
		return nil, fmt.Errorf("blob %s is %d bytes, more than the %d allowed", d.Digest, d.Size, maxConfigSize)
	}
	l, err := remote.Layer(repo.Digest(d.Digest), opts...)
	if err != nil {
		return nil, fail(err)
	}
	rc, err := l.Compressed()
	if err != nil {
		return nil, fail(err)
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(&ctxReader{ctx: ctx, r: rc}, maxConfigSize+1))
	if err != nil {
		return nil, fail(err)
	}
	if len(data) > maxConfigSize {
		return nil, fmt.Errorf("blob %s is larger than %d bytes", d.Digest, maxConfigSize)
	}
	if err := verifyBytes(data, d.Digest); err != nil {
		return nil, err
	}
	return data, nil
}

// registryError says plainly whether the registry could not be reached or
// answered with a refusal.
func registryError(ctx context.Context, ref name.Reference, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	reg := ref.Context().RegistryStr()
	var te *transport.Error
	if errors.As(err, &te) {
		return fmt.Errorf("registry %s refused to serve %s: %w", reg, ref.Name(), err)
	}
	return fmt.Errorf("could not reach registry %s to pull %s (check the network, or import a file made with `docker save` or `skopeo copy … oci-archive:FILE`): %w", reg, ref.Name(), err)
}
