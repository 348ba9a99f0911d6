package apiserver

import (
	"crypto/subtle"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/ouroboros-cloud/ouro/api"
	"github.com/ouroboros-cloud/ouro/auth"
	"github.com/ouroboros-cloud/ouro/session"
	"github.com/ouroboros-cloud/ouro/store"
)

// CSRFHeader carries a session's CSRF token on every change made with
// the session cookie.
const CSRFHeader = "X-CSRF-Token"

func (s *Server) sessionRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/session", s.signIn)
	mux.HandleFunc("GET /v1/session", s.getSession)
	mux.HandleFunc("DELETE /v1/session", s.signOut)
	mux.Handle("PUT /v1/users/{name}/password", s.authed(s.setPassword))
}

// authenticateSession resolves the session cookie of r, if any. For a
// request that changes something it also checks the CSRF header.
func (s *Server) authenticateSession(r *http.Request) (*auth.Identity, *session.Record, error) {
	c, err := r.Cookie(session.CookieName)
	if err != nil || c.Value == "" {
		return nil, nil, unauthorized("missing bearer token or session cookie")
	}
	id, rec, err := s.sessions.Authenticate(r.Context(), c.Value)
	switch {
	case errors.Is(err, auth.ErrUnauthenticated):
		return nil, nil, sessionEnded()
	case err != nil:
		return nil, nil, unavailable(fmt.Errorf("authenticate session: %w", err))
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		got := r.Header.Get(CSRFHeader)
		if got == "" || subtle.ConstantTimeCompare([]byte(got), []byte(rec.Spec.CSRFToken)) != 1 {
			return nil, nil, &api.Error{Status: http.StatusForbidden, Code: api.CodeCSRFTokenInvalid,
				Message: "a change made with the session cookie needs the session's " + CSRFHeader + " header",
				Hint:    "send the csrfToken of GET /v1/session in the " + CSRFHeader + " header"}
		}
	}
	id.CSRFToken = rec.Spec.CSRFToken
	return id, rec, nil
}

func sessionEnded() *api.Error {
	return &api.Error{Status: http.StatusUnauthorized, Code: api.CodeUnauthorized,
		Message: "the session has ended or is not valid", Hint: "sign in again"}
}

// signIn serves POST /v1/session: a user name and password, or a token,
// for a session cookie.
func (s *Server) signIn(w http.ResponseWriter, r *http.Request) {
	if err := s.signInErr(w, r); err != nil {
		s.writeError(w, r, err)
	}
}

func (s *Server) signInErr(w http.ResponseWriter, r *http.Request) error {
	var req api.SessionRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	addrKey := "addr:" + clientAddr(r)
	var spec session.Spec
	if req.Token != "" {
		if req.User != "" || req.Password != "" {
			return api.Invalid("token", "send either a token or a user and password", "a token comes alone")
		}
		if err := s.attempt(w, addrKey); err != nil {
			return err
		}
		id, err := s.authn.Authenticate(r.Context(), req.Token)
		if errors.Is(err, auth.ErrUnauthenticated) || err == nil && id.User == "" {
			return &api.Error{Status: http.StatusUnauthorized, Code: api.CodeUnauthorized,
				Message: "the token is not valid or has expired", Hint: "use a user's API token"}
		}
		if err != nil {
			return unavailable(fmt.Errorf("authenticate token: %w", err))
		}
		var u api.User
		if err := s.store.Get(r.Context(), api.UserKind, "", id.User, &u); err != nil {
			return unavailable(fmt.Errorf("read user %s: %w", id.User, err))
		}
		s.limiter.Succeed(addrKey)
		spec = session.Spec{User: u.Metadata.Name, UserUID: u.Metadata.UID, Token: id.Token}
	} else {
		if req.User == "" {
			return api.Invalid("user", "name the user to sign in as", "user is required")
		}
		if req.Password == "" {
			return api.Invalid("password", "type the user's password", "password is required")
		}
		if len(req.User) > api.MaxNameLength || len(req.Password) > auth.MaxPasswordLength {
			return badCredentials()
		}
		userKey := "user:" + req.User
		if err := s.attempt(w, userKey, addrKey); err != nil {
			return err
		}
		var u api.User
		err := s.store.Get(r.Context(), api.UserKind, "", req.User, &u)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			return unavailable(fmt.Errorf("read user %s: %w", req.User, err))
		}
		if err == nil && u.Status.PasswordHash != "" {
			err = auth.CheckPassword(req.Password, u.Status.PasswordHash)
		} else {
			err = auth.CheckNoPassword(req.Password)
		}
		if errors.Is(err, auth.ErrPasswordMismatch) {
			return badCredentials()
		}
		if err != nil {
			return fmt.Errorf("check password of %s: %w", req.User, err)
		}
		s.limiter.Succeed(userKey, addrKey)
		spec = session.Spec{User: u.Metadata.Name, UserUID: u.Metadata.UID, PasswordStamp: session.Stamp(u.Status.PasswordHash)}
	}
	sid, rec, err := s.sessions.Create(r.Context(), spec)
	if err != nil {
		return unavailable(err)
	}
	http.SetCookie(w, &http.Cookie{Name: session.CookieName, Value: sid, Path: "/", Expires: rec.Spec.Expires,
		MaxAge: int(session.TTL / time.Second), HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, sessionOf(rec))
	return nil
}

func badCredentials() *api.Error {
	return &api.Error{Status: http.StatusUnauthorized, Code: api.CodeUnauthorized,
		Message: "the user name or password is wrong", Hint: "check both; after 5 failures sign-in is locked out for a while"}
}

// attempt counts a sign-in attempt for keys (a failure until Succeed),
// or answers 429 with Retry-After while any of them is locked out.
func (s *Server) attempt(w http.ResponseWriter, keys ...string) error {
	wait := s.limiter.Attempt(keys...)
	if wait <= 0 {
		return nil
	}
	secs := int((wait + time.Second - 1) / time.Second)
	w.Header().Set("Retry-After", strconv.Itoa(secs))
	return &api.Error{Status: http.StatusTooManyRequests, Code: api.CodeTooManyRequests,
		Message: "too many failed sign-ins", Hint: fmt.Sprintf("try again in %d s", secs)}
}

// clientAddr is the address the request came from, without its port.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func sessionOf(rec *session.Record) api.Session {
	return api.Session{User: rec.Spec.User, CSRFToken: rec.Spec.CSRFToken, Expires: rec.Spec.Expires}
}

// getSession serves GET /v1/session: the session of the cookie.
func (s *Server) getSession(w http.ResponseWriter, r *http.Request) {
	_, rec, err := s.authenticateSession(r)
	if err != nil {
		s.writeError(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, sessionOf(rec))
}

// signOut serves DELETE /v1/session: it ends the session of the cookie
// and clears the cookie. Without a valid session there is nothing to end.
func (s *Server) signOut(w http.ResponseWriter, r *http.Request) {
	_, _, err := s.authenticateSession(r)
	var e *api.Error
	if errors.As(err, &e) && e.Code != api.CodeUnauthorized {
		s.writeError(w, r, err)
		return
	}
	if err == nil {
		c, _ := r.Cookie(session.CookieName)
		if err := s.sessions.Delete(r.Context(), c.Value); err != nil {
			s.writeError(w, r, unavailable(err))
			return
		}
	}
	http.SetCookie(w, &http.Cookie{Name: session.CookieName, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, Secure: true, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
}

// setPassword serves PUT /v1/users/{name}/password: users set their own
// password, cluster admins anyone's. Every session signed in with the
// old password ends.
func (s *Server) setPassword(w http.ResponseWriter, r *http.Request, id *auth.Identity) error {
	name := r.PathValue("name")
	if e := api.ValidateName("metadata.name", name); e != nil {
		return e
	}
	if !id.ClusterAdmin && (id.Host != "" || id.User != name) {
		return forbidden("only cluster admins may set another user's password")
	}
	var req api.PasswordRequest
	if err := decodeJSON(w, r, &req); err != nil {
		return err
	}
	if err := auth.ValidatePassword(req.Password); err != nil {
		return api.Invalid("password", fmt.Sprintf("use at least %d characters", auth.MinPasswordLength),
			"the password is not allowed: %v", err)
	}
	hash := auth.HashPassword(req.Password)
	for range maxConflictRetries {
		var u api.User
		if err := s.store.Get(r.Context(), api.UserKind, "", name, &u); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return api.NotFound("User", name)
			}
			return fmt.Errorf("get user %s: %w", name, err)
		}
		now := time.Now().UTC().Truncate(time.Second)
		u.Status = api.UserStatus{PasswordSet: true, PasswordChangedAt: &now, PasswordHash: hash}
		err := s.store.Update(r.Context(), &u)
		if errors.Is(err, store.ErrConflict) {
			continue
		}
		if err != nil {
			return fmt.Errorf("update user %s: %w", name, err)
		}
		writeJSON(w, http.StatusOK, prepareOut(&u))
		return nil
	}
	return api.Conflict("user %q changes too fast", name)
}
