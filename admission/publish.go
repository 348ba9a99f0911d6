package admission

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/store"
)

// Publishing images. A public image is used by every project that names
// it without an image of its own of that name, so only cluster admins
// publish images, and one name is public in one project at most: a name
// cannot become ambiguous, nor can a tenant plant content under a name
// others use. The name is claimed in the store (publicImageClaim) in the
// transaction that makes the image public, so two servers cannot publish
// one name at once; images made public before the claim existed are found
// by listing.

// publicImageClaim is the store claim of a public image's name.
func publicImageClaim(name string) string { return "publicimage/" + name }

// publishForbidden refuses making an image public to a caller who is not a
// cluster admin.
func publishForbidden(id *auth.Identity) error {
	return &api.Error{Status: http.StatusForbidden, Code: api.CodeForbidden, Field: "spec.public",
		Message: fmt.Sprintf("%s may not make an image public: only cluster admins publish images", id),
		Hint:    "leave spec.public out (no --public) to keep the image in its project, or ask a cluster admin to publish it"}
}

// publicNameTaken refuses a second public image of a name.
func publicNameTaken(name, holder string) error {
	return &api.Error{Status: http.StatusConflict, Code: api.CodeAlreadyExists, Field: "spec.public",
		Message: fmt.Sprintf("image name %q is already public as %s", name, holder),
		Hint:    "give the image another name, or make " + holder + " private first"}
}

// checkPublicName refuses making img public when another project has a
// public image of its name (one made public before names were claimed).
func checkPublicName(ctx context.Context, st store.Interface, img *api.Image) error {
	m := img.Metadata
	others, _, err := st.List(ctx, api.ImageKind, "", store.ListOptions{Filter: func(o api.Object) bool {
		i := o.(*api.Image)
		return i.Spec.Public && i.Metadata.Name == m.Name && i.Metadata.Project != m.Project
	}})
	if err != nil {
		return fmt.Errorf("list public images: %w", err)
	}
	if len(others) > 0 {
		return publicNameTaken(m.Name, others[0].Meta().Project+"/"+m.Name)
	}
	return nil
}

// claimHolder names the image holding a public name claim as
// project/name, from the holder's store key.
func claimHolder(ce *store.ClaimError) string {
	parts := strings.Split(ce.Holder, "/")
	if len(parts) < 2 {
		return ce.HolderName()
	}
	return parts[len(parts)-2] + "/" + parts[len(parts)-1]
}

// StoreImage stores an image admitted by ValidateImageCreate, writing
// with st; a public image claims its name in the same transaction, and a
// name already public in another project is refused.
func StoreImage(ctx context.Context, st store.Interface, img *api.Image, opts store.CreateOptions) (bool, error) {
	if img.Spec.Public {
		if err := checkPublicName(ctx, st, img); err != nil {
			return false, err
		}
		opts.Claims = append(opts.Claims, publicImageClaim(img.Metadata.Name))
	}
	existed, err := st.Create(ctx, img, opts)
	if ce := (*store.ClaimError)(nil); errors.As(err, &ce) {
		return false, publicNameTaken(img.Metadata.Name, claimHolder(ce))
	}
	return existed, err
}

// UpdateImage stores the change of old to img admitted by
// ValidateImageUpdate, writing with st: it claims the image's name when
// the image becomes public and releases it when it becomes private.
func UpdateImage(ctx context.Context, st store.Interface, old, img *api.Image) error {
	claim := publicImageClaim(img.Metadata.Name)
	var err error
	switch {
	case img.Spec.Public && !old.Spec.Public:
		if err := checkPublicName(ctx, st, img); err != nil {
			return err
		}
		err = st.UpdateClaims(ctx, img, []string{claim}, nil)
	case !img.Spec.Public && old.Spec.Public:
		err = st.UpdateClaims(ctx, img, nil, []string{claim})
	default:
		err = st.Update(ctx, img)
	}
	if ce := (*store.ClaimError)(nil); errors.As(err, &ce) {
		return publicNameTaken(img.Metadata.Name, claimHolder(ce))
	}
	return err
}
