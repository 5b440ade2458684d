"""The console's HTTP API (FastAPI; OpenAPI at `/openapi.json`, browsable at `/docs`) and its static page.

One long-lived SparkSession, built by the caller (`cdp console` uses `cdp.spark.build_spark`), lives in
`app.state.spark`; handlers reach it through `request.app.state`. FastAPI runs the plain `def` handlers in a
thread pool; Spark's session is thread-safe for concurrent jobs.

Rules every handler follows:
- a bearer token from `POST /api/auth/login` is required (except `/api/health`, the page and the OpenAPI);
  each handler names the permission it needs (`cdp.console.auth.PERMISSIONS`): 401 without a valid token,
  403 when the role lacks the permission;
- request values reach Spark only as bound literals in Column expressions; segment definitions go through
  the segment validator; no request text is ever formatted into SQL;
- bad input gets a 4xx with `{"detail": "<what is wrong and how to fix it>"}`; personal values are never logged.
"""
from __future__ import annotations

import datetime as dt
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, ConfigDict, Field

from cdp.console import engine_adapter as engine
from cdp.console.auth import Session, SessionStore, load_users, role_permissions
from cdp.console.views import LakeViews, mask_record, normalise_mobile, withhold_raw_text
from cdp.errors import CdpError, ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from cdp.config import Settings

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).parent / "static"
SEGMENT_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")
# Tables the console serves rows of, per role. Bronze and pii_values hold raw personal data: never served.
READABLE_PREFIXES = {
    "marketer": ("gold_",),
    "data_engineer": ("gold_", "silver_", "identity_", "ingest_", "quarantine_"),
    "admin": ("gold_", "silver_", "identity_", "ingest_", "quarantine_", "model_"),
}
NEVER_SERVED = ("bronze_", "pii_values")


# --- request / response models -------------------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LoginRequest(_Strict):
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=256)


class LoginResponse(BaseModel):
    token: str
    username: str
    role: str
    permissions: list[str]


class DefinitionRequest(_Strict):
    definition: dict[str, Any] = Field(description="a segment definition in the conf/segments format")


class SaveRequest(_Strict):
    definition: dict[str, Any]
    overwrite: bool = False


class RunRequest(_Strict):
    run_date: dt.date | None = Field(None, description="default: the date gold_segment_base was built for")


class ExportRequest(_Strict):
    run_date: dt.date | None = Field(None, description="default: the segment's latest run")
    target: Literal["wecom", "unionid", "mobile_hash"] = "wecom"


class ProfileSearch(_Strict):
    one_id: str | None = Field(None, max_length=64)
    member_card: str | None = Field(None, max_length=64)
    mobile: str | None = Field(None, max_length=32, description="roles with profiles:lookup_mobile only; sent "
                               "in the body so it never lands in access logs; hashed with the lake key")


# --- dependencies ------------------------------------------------------------------------------------------
def _session(request: Request) -> Session:
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else ""
    session = request.app.state.sessions.get(token) if token else None
    if session is None:
        raise HTTPException(401, "sign in first: POST /api/auth/login, then send `Authorization: Bearer <token>`",
                            headers={"WWW-Authenticate": "Bearer"})
    return session


def require(permission: str):
    def check(session: Session = Depends(_session)) -> Session:
        if permission not in session.permissions:
            raise HTTPException(403, f"role {session.role!r} may not do this (needs {permission!r})")
        return session
    return check


def _views(request: Request) -> LakeViews:
    return request.app.state.views


def _valid_name(name: str) -> str:
    if not SEGMENT_NAME.match(name):
        raise HTTPException(422, f"segment name {name!r} is not valid: use lower-case letters, digits and "
                                 "underscores, starting with a letter (at most 63 characters)")
    return name


def _definition(raw: dict[str, Any], settings: Settings) -> Any:
    try:
        return engine.load_definition(raw, settings)
    except engine.DefinitionError as exc:
        raise HTTPException(422, str(exc)) from None


def create_app(spark: SparkSession, settings: Settings, users_file: str | Path,
               exports_dir: str | Path | None = None) -> FastAPI:
    """The console application over one SparkSession and one lake.

    `users_file` is a `conf/console.yaml`-shaped file; saved segments go to the settings' `conf/segments/`;
    `exports_dir` keeps every export file (default `<lake_dir>/exports`).
    """
    config = load_users(users_file)
    if config.demo and settings.profile != "local":
        raise ConfigError(f"{users_file}: demo users (demo: true) are only allowed with the local profile; "
                          "pass your own users file with --users (see docs/console.md)")
    app = FastAPI(title="CDP console API", version="1",
                  description="Segments, profile 360 and overview pictures over the CDP's gold tables. "
                              "Sign in with POST /api/auth/login and send the token as a Bearer header.")
    app.state.spark = spark
    app.state.settings = settings
    app.state.sessions = SessionStore(config, role_permissions(settings.conf_path("roles.yaml")))
    app.state.views = LakeViews(spark, settings)
    app.state.exports_dir = Path(exports_dir) if exports_dir else Path(settings.lake_dir) / "exports"
    app.state.engine_cache = engine.EngineCache()

    @app.exception_handler(CdpError)
    def _cdp_error(request: Request, exc: CdpError) -> JSONResponse:
        # a ConfigError from the engine says what is missing and how to fix it (e.g. "run cdp tags build")
        return JSONResponse({"detail": str(exc)}, status_code=409 if isinstance(exc, ConfigError) else 422)

    # --- auth ----------------------------------------------------------------------------------------------
    @app.get("/api/health", tags=["meta"])
    def health() -> dict[str, Any]:
        return {"ok": True, "engine": engine.ENGINE_NAME}

    @app.post("/api/auth/login", response_model=LoginResponse, tags=["auth"])
    def login(body: LoginRequest, request: Request) -> LoginResponse:
        session = request.app.state.sessions.sign_in(body.username, body.password)
        if session is None:
            raise HTTPException(401, "wrong user name or password")
        return LoginResponse(token=session.token, username=session.username, role=session.role,
                             permissions=sorted(session.permissions))

    @app.post("/api/auth/logout", tags=["auth"])
    def logout(request: Request, session: Session = Depends(_session)) -> dict[str, bool]:
        request.app.state.sessions.sign_out(session.token)
        return {"ok": True}

    @app.get("/api/me", tags=["auth"])
    def me(session: Session = Depends(_session)) -> dict[str, Any]:
        return {"username": session.username, "role": session.role, "permissions": sorted(session.permissions)}

    # --- segments ------------------------------------------------------------------------------------------
    @app.get("/api/catalog", tags=["segments"])
    def catalog(request: Request, session: Session = Depends(require("segments:read"))) -> dict[str, Any]:
        """Everything the builder offers: tags, attributes, stages, RFM segments, models, skus, channels, stores."""
        return engine.catalog(request.app.state.spark, request.app.state.settings, request.app.state.engine_cache)

    @app.post("/api/segments/validate", tags=["segments"])
    def validate(body: DefinitionRequest, request: Request,
                 session: Session = Depends(require("segments:read"))) -> dict[str, Any]:
        definition = _definition(body.definition, request.app.state.settings)
        return {"ok": True, "definition": engine.dump_definition(definition), "description": definition.describe()}

    @app.post("/api/segments/preview", tags=["segments"])
    def preview(body: DefinitionRequest, request: Request,
                session: Session = Depends(require("segments:read"))) -> dict[str, Any]:
        """`cdp segment preview` on the definition: count, by_stage, by_channel, by_store, masked samples."""
        state = request.app.state
        result = engine.preview(state.spark, state.settings, _definition(body.definition, state.settings))
        result["samples"] = [mask_record(s) for s in result.get("samples", [])]
        return result

    @app.get("/api/segments", tags=["segments"])
    def list_segments(request: Request, session: Session = Depends(require("segments:read"))) -> dict[str, Any]:
        return {"segments": engine.list_definitions(request.app.state.settings)}

    @app.get("/api/segments/{name}", tags=["segments"])
    def get_segment(name: str, request: Request,
                    session: Session = Depends(require("segments:read"))) -> dict[str, Any]:
        definition = engine.read_definition(request.app.state.settings, _valid_name(name))
        if definition is None:
            raise HTTPException(404, f"no saved segment {name!r}; GET /api/segments lists them")
        return {"name": name, "definition": definition}

    @app.put("/api/segments/{name}", tags=["segments"])
    def save_segment(name: str, body: SaveRequest, request: Request,
                     session: Session = Depends(require("segments:write"))) -> dict[str, Any]:
        """Save as `conf/segments/<name>.yaml` (the declared format); 409 if it exists and `overwrite` is false."""
        settings = request.app.state.settings
        definition = _definition({**body.definition, "name": _valid_name(name)}, settings)
        if engine.read_definition(settings, name) is not None and not body.overwrite:
            raise HTTPException(409, f"segment {name!r} exists; send overwrite=true to replace it")
        path = engine.save_definition(definition, settings, overwrite=body.overwrite)
        log.info("console saved segment %s", name)
        return {"name": name, "file": path.name, "definition": engine.dump_definition(definition)}

    def _saved(request: Request, name: str) -> str:
        if engine.read_definition(request.app.state.settings, _valid_name(name)) is None:
            raise HTTPException(404, f"no saved segment {name!r}; save it first with PUT /api/segments/{name}")
        return name

    @app.post("/api/segments/{name}/run", tags=["segments"])
    def run_segment(name: str, body: RunRequest, request: Request,
                    session: Session = Depends(require("segments:write"))) -> dict[str, Any]:
        """Materialise the saved segment into gold_segment_members for the run date (default: the base's date)."""
        state = request.app.state
        return engine.run(state.spark, state.settings, _saved(request, name), body.run_date)

    @app.post("/api/segments/{name}/export", tags=["segments"])
    def export_segment(name: str, body: ExportRequest, request: Request,
                       session: Session = Depends(require("segments:export"))) -> Response:
        """Activation CSV of the segment's latest run (or `run_date`): consent-filtered, formula-safe; the
        counts travel in X-* headers. `unionid` exports raw unionids from pii_values: admin only."""
        if body.target == "unionid" and "pii:export" not in session.permissions:
            raise HTTPException(403, f"role {session.role!r} may not export raw unionids; use target wecom or "
                                     "mobile_hash")
        state = request.app.state
        result = engine.export(state.spark, state.settings, _saved(request, name), body.target,
                               state.exports_dir, body.run_date)
        log.info("console export segment=%s target=%s rows=%s", name, body.target, result["rows"])
        return Response(result["content"], media_type="text/csv; charset=utf-8", headers={
            "Content-Disposition": f'attachment; filename="{result["out"]}"',
            "X-Run-Date": result["run_date"],
            "X-Members": str(result["members"]),
            "X-Exported-Rows": str(result["rows"]),
            "X-Excluded-No-Consent": str(result["excluded_no_consent"]),
            "X-Consented-Without-Identifier": str(result["consented_without_identifier"]),
            "Access-Control-Expose-Headers": "X-Run-Date, X-Members, X-Exported-Rows, X-Excluded-No-Consent, "
                                             "X-Consented-Without-Identifier",
        })

    # --- profiles ------------------------------------------------------------------------------------------
    @app.post("/api/profiles/search", tags=["profiles"])
    def search_profiles(body: ProfileSearch, request: Request,
                        session: Session = Depends(require("profiles:read"))) -> dict[str, Any]:
        """Find One-IDs by exactly one of one_id, member_card or mobile (mobile needs profiles:lookup_mobile)."""
        given = [k for k in ("one_id", "member_card", "mobile") if getattr(body, k)]
        if len(given) != 1:
            raise HTTPException(422, "give exactly one of one_id, member_card, mobile")
        views = request.app.state.views
        if body.mobile:
            if "profiles:lookup_mobile" not in session.permissions:
                raise HTTPException(403, f"role {session.role!r} may not look customers up by mobile; "
                                         "use the One-ID or the member card")
            mobile = normalise_mobile(body.mobile)
            if mobile is None:
                raise HTTPException(422, "not a mainland mobile number (11 digits starting 13-19, optional +86)")
            from cdp.privacy import hash_value, load_secret

            found = views.find_one_ids(mobile_hash=hash_value(mobile, "mobile", load_secret(request.app.state.settings)))
        else:
            found = views.find_one_ids(one_id=body.one_id, member_card=body.member_card)
        return {"one_ids": found}

    @app.get("/api/profiles/{one_id}", tags=["profiles"])
    def get_profile(one_id: str, request: Request,
                    session: Session = Depends(require("profiles:read"))) -> dict[str, Any]:
        """Profile 360: identities (masked), orders on one timeline, tags, lifecycle, RFM, scores, WeCom, graph."""
        if len(one_id) > 64:
            raise HTTPException(422, "one_id is at most 64 characters")
        masked = "profiles:lookup_mobile" not in session.permissions  # marketers: masked identifiers only
        result = request.app.state.views.profile(one_id, mask_cards=masked)
        if result is None:
            raise HTTPException(404, f"no profile with One-ID {one_id!r}")
        return mask_record(result) if masked else result

    # --- overview ------------------------------------------------------------------------------------------
    @app.get("/api/overview/rfm", tags=["overview"])
    def overview_rfm(views: LakeViews = Depends(_views),
                     session: Session = Depends(require("overview:read"))) -> dict[str, Any]:
        return views.rfm_grid()

    @app.get("/api/overview/lifecycle", tags=["overview"])
    def overview_lifecycle(days: int = 90, views: LakeViews = Depends(_views),
                           session: Session = Depends(require("overview:read"))) -> dict[str, Any]:
        if not 1 <= days <= 730:
            raise HTTPException(422, "days must be between 1 and 730")
        return views.lifecycle_funnel(days)

    @app.get("/api/overview/segments", tags=["overview"])
    def overview_segments(views: LakeViews = Depends(_views),
                          session: Session = Depends(require("overview:read"))) -> dict[str, Any]:
        return views.segment_sizes()

    @app.get("/api/overview/quality", tags=["overview"])
    def overview_quality(runs: int = 10, views: LakeViews = Depends(_views),
                         session: Session = Depends(require("overview:read"))) -> dict[str, Any]:
        if not 1 <= runs <= 100:
            raise HTTPException(422, "runs must be between 1 and 100")
        return views.data_quality(runs)

    # --- tables (read-only rows, by role) ------------------------------------------------------------------
    @app.get("/api/tables", tags=["tables"])
    def list_tables(request: Request, session: Session = Depends(_session)) -> dict[str, Any]:
        """Logical tables this role may read rows of (bronze and pii_values are never served)."""
        names = sorted(n for n in request.app.state.settings.tables if _readable(session.role, n))
        return {"tables": names}

    @app.get("/api/tables/{name}", tags=["tables"])
    def read_rows(name: str, request: Request, limit: int = 20,
                  session: Session = Depends(_session)) -> dict[str, Any]:
        settings = request.app.state.settings
        if name not in settings.tables:
            raise HTTPException(404, f"unknown table {name!r}; GET /api/tables lists what you may read")
        if not _readable(session.role, name):
            raise HTTPException(403, f"role {session.role!r} may not read {name!r}"
                                     + (" (raw personal data is never served by the console)"
                                        if name.startswith(NEVER_SERVED) else ""))
        if not 1 <= limit <= 100:
            raise HTTPException(422, "limit must be between 1 and 100")
        views = request.app.state.views
        t = views.table(name)
        if t is None:
            raise HTTPException(404, f"table {name!r} has not been written yet")
        from cdp.console.views import rows

        out = [withhold_raw_text(r) for r in rows(t, limit)]
        masked = "profiles:lookup_mobile" not in session.permissions
        return {"table": name, "columns": t.columns, "rows": [mask_record(r) for r in out] if masked else out}

    @app.post("/api/admin/refresh", tags=["meta"])
    def refresh(request: Request, session: Session = Depends(require("quality:detail"))) -> dict[str, bool]:
        """Drop cached tables so the console sees the latest pipeline run."""
        request.app.state.views.refresh()
        request.app.state.engine_cache.clear()
        return {"ok": True}

    # --- the page ------------------------------------------------------------------------------------------
    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC_DIR / "index.html")

    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _readable(role: str, name: str) -> bool:
    return not name.startswith(NEVER_SERVED) and name.startswith(READABLE_PREFIXES[role])
