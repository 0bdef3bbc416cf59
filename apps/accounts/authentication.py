from __future__ import annotations

from rest_framework import authentication, exceptions

from apps.accounts.services import token_authenticate


class TokenAuthentication(authentication.BaseAuthentication):
    """``Authorization: Token <key>`` against hashed personal tokens."""

    keyword = "Token"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).split()
        if not header or header[0].lower() != self.keyword.lower().encode():
            return None
        if len(header) != 2:
            raise exceptions.AuthenticationFailed("Use 'Authorization: Token <key>'.")
        token = token_authenticate(header[1].decode(errors="replace"))
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid, expired or revoked token.")
        return token.user, token

    def authenticate_header(self, request):
        return self.keyword
