package apiserver

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/strictjson"
)

// MaxBodyBytes bounds JSON request bodies.
const MaxBodyBytes = 1 << 20

// decodeJSON reads exactly one JSON value of at most MaxBodyBytes into v,
// refusing other content types, unknown fields, wrong types and trailing
// data. Errors are API errors naming the field.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any) error {
	if err := requireJSON(r); err != nil {
		return err
	}
	if r.ContentLength > MaxBodyBytes {
		return tooLarge(MaxBodyBytes)
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, MaxBodyBytes))
	if err != nil {
		return decodeError(err)
	}
	return decodeError(strictjson.Decode(body, v))
}

func requireJSON(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return &api.Error{Status: http.StatusUnsupportedMediaType, Code: api.CodeUnsupportedMedia,
			Message: fmt.Sprintf("content type %q is not supported", ct), Hint: "send Content-Type: application/json"}
	}
	return nil
}

func tooLarge(limit int64) *api.Error {
	return &api.Error{Status: http.StatusRequestEntityTooLarge, Code: api.CodeTooLarge,
		Message: fmt.Sprintf("the request body is larger than %d bytes", limit), Hint: "send a smaller body"}
}

// decodeError turns a decoding error into a 400 naming the field; nil
// stays nil.
func decodeError(err error) error {
	var (
		mbe *http.MaxBytesError
		se  *json.SyntaxError
		te  *json.UnmarshalTypeError
		de  *strictjson.DuplicateKeyError
		fe  *strictjson.FieldError
	)
	switch {
	case err == nil:
		return nil
	case errors.As(err, &de):
		return api.Invalid(de.Path, "send each field once", "the field %s is given more than once", de.Path)
	case errors.Is(err, strictjson.ErrTrailingData):
		return api.Invalid("", "send exactly one JSON object", "unexpected data after the JSON object")
	case errors.As(err, &fe):
		var ce base64.CorruptInputError
		if errors.As(fe.Err, &ce) {
			return api.Invalid(fe.Path, "send bytes as standard base64", "%s is not valid base64 (at byte %d)", fe.Path, int64(ce))
		}
		return api.Invalid(fe.Path, "send well-formed JSON", "%s: %v", fe.Path, fe.Err)
	case errors.As(err, &mbe):
		return tooLarge(mbe.Limit)
	case errors.Is(err, io.EOF):
		return api.Invalid("", "send a JSON object", "the request body is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return api.Invalid("", "send complete JSON", "the JSON ends too early")
	case errors.As(err, &se):
		return api.Invalid("", "send well-formed JSON", "malformed JSON at byte %d: %v", se.Offset, se)
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "(body)"
		}
		return api.Invalid(field, fmt.Sprintf("send a JSON %s", jsonType(te.Type.Kind().String())),
			"expected %s, got JSON %s", jsonType(te.Type.Kind().String()), te.Value)
	}
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		name = strings.Trim(name, `"`)
		return api.Invalid(name, "remove the field; see docs/api.md for the fields of each kind", "unknown field %q", name)
	}
	return api.Invalid("", "send well-formed JSON", "cannot decode the body: %s", msg)
}

// jsonType names a Go kind as the JSON type it is written in.
func jsonType(goKind string) string {
	switch {
	case strings.HasPrefix(goKind, "int"), strings.HasPrefix(goKind, "uint"), strings.HasPrefix(goKind, "float"):
		return "number (" + goKind + ")"
	case goKind == "string":
		return "string"
	case goKind == "bool":
		return "boolean"
	case goKind == "slice", goKind == "array":
		return "array"
	case goKind == "map", goKind == "struct", goKind == "ptr":
		return "object"
	}
	return goKind
}
