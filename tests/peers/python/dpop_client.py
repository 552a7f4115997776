"""A real DPoP client for tokengate's tests: requests-oauth2client (pinned in
.ci/requirements.txt, installed into .ci/venv by .ci/install-python).

It discovers the issuer, gets a DPoP-bound access token by client_credentials (a DPoPKey,
ES256, made here), and calls a resource through tokengate with the token as the `requests`
auth handler (DPoPToken adds `Authorization: DPoP` and a fresh proof to each request, and
answers a resource's `use_dpop_nonce` 401 with one retry carrying the nonce).

Configured by environment variables: ISSUER, CLIENT_ID, CLIENT_SECRET, SCOPE (default read),
RESOURCE_URL, METHOD (default GET). Prints one JSON line and exits 0 when the resource
answered, whatever the status:
  {"token_type", "access_token", "status", "body", "attempts": [status of each request to
   RESOURCE_URL], "nonces": [DPoP-Nonce of each answer, or null]}
On a failure before that, prints {"error": "..."} and exits 1.
"""

import json
import os
import sys
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from requests_oauth2client import DPoPKey, DPoPToken, OAuth2Client


def need(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set")
    return value


def main() -> None:
    issuer = need("ISSUER").rstrip("/")
    resource_url = need("RESOURCE_URL")
    client = OAuth2Client.from_discovery_endpoint(
        f"{issuer}/.well-known/openid-configuration",
        issuer=issuer,
        auth=(need("CLIENT_ID"), need("CLIENT_SECRET")),
        # The peers run on http://127.0.0.1; `testing` only lifts the https-only URL check.
        testing=True,
    )
    token = client.client_credentials(
        scope=os.environ.get("SCOPE", "read"),
        dpop=True,
        dpop_key=DPoPKey.generate(alg="ES256"),
    )
    if not isinstance(token, DPoPToken):
        raise RuntimeError(f"the token is not DPoP-bound: {token.token_type}")

    # Every answer of the resource, recorded by the transport adapter: DPoPToken sends its
    # nonce retry from a response hook straight through the adapter, so no session hook
    # would see both answers.
    answers: list[requests.Response] = []

    class Recording(HTTPAdapter):
        def send(self, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
            answer = super().send(request, **kwargs)
            answers.append(answer)
            return answer

    session = requests.Session()
    session.mount("http://", Recording())
    session.mount("https://", Recording())
    response = session.request(os.environ.get("METHOD", "GET"), resource_url, auth=token, timeout=10)
    attempts = [answer.status_code for answer in answers]
    nonces = [answer.headers.get("DPoP-Nonce") for answer in answers]
    try:
        body: object = response.json()
    except ValueError:
        body = response.text
    print(
        json.dumps(
            {
                "token_type": token.token_type,
                "access_token": token.access_token,
                "status": response.status_code,
                "body": body,
                "attempts": attempts,
                "nonces": nonces,
            }
        )
    )


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # noqa: BLE001 - reported to the test as one JSON line
        print(json.dumps({"error": f"{type(error).__name__}: {error}"}))
        sys.exit(1)
