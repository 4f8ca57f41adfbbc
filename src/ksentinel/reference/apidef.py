"""What the reference platform implements, declared as a :class:`~ksentinel.schema.model.Schema`.

Names, types, flags, base classes, parameter order, default literals, result types and error templates
follow the real Kaltura OVP schema (API 22.15.0, ``api_schema.php``) for the subset the platform serves:
sessions, upload tokens, base/media entries and ``system.ping``. Descriptions are our own, kept short.
``tests/test_reference_apidef.py`` checks every declaration here against the real schema file.
"""

from __future__ import annotations

from ksentinel.schema.model import (
    ActionDef,
    ClassDef,
    EnumDef,
    ErrorDef,
    ParamDef,
    PropDef,
    Schema,
    ServiceDef,
)

API_VERSION = "22.15.0"

_REQUIRED = object()  # marker: a parameter with no default is mandatory


# --------------------------------------------------------------------------------------------- helpers


def _enum(name: str, enum_type: str, *consts: tuple[str, str | int]) -> EnumDef:
    return EnumDef(name, enum_type, tuple((const, str(value)) for const, value in consts))


def _p(
    name: str,
    type_: str,
    *,
    enum: str | None = None,
    array: str | None = None,
    ro: bool = False,
    io: bool = False,
    time: bool = False,
    max_length: int | None = None,
    desc: str = "",
) -> PropDef:
    """A property; ``enum`` / ``array`` give enumType / arrayType, ``ro`` / ``io`` readOnly / insertOnly."""
    return PropDef(
        name,
        type_,
        enum_type=enum,
        array_type=array,
        read_only=ro,
        insert_only=io,
        is_time=time,
        max_length=max_length,
        description=desc,
    )


def _cls(
    name: str, *props: PropDef, base: str | None = None, abstract: bool = False, desc: str = ""
) -> ClassDef:
    return ClassDef(name, tuple(props), base=base, abstract=abstract, description=desc)


def _arg(
    name: str,
    type_: str,
    *,
    enum: str | None = None,
    array: str | None = None,
    default: object = _REQUIRED,
    desc: str = "",
) -> ParamDef:
    """An action parameter; giving ``default`` (the schema's literal, e.g. ``"null"``) makes it optional."""
    if default is _REQUIRED:
        return ParamDef(name, type_, enum_type=enum, array_type=array, description=desc)
    return ParamDef(
        name, type_, enum_type=enum, array_type=array, optional=True, default=str(default), description=desc
    )


def _act(
    name: str,
    *params: ParamDef,
    result: str | None = None,
    session: str = "always",
    throws: tuple[str, ...] = (),
    desc: str = "",
) -> ActionDef:
    return ActionDef(
        name, tuple(params), result_type=result, session_required=session, throws=throws, description=desc
    )


def _err(name: str, message: str, *parameters: str) -> ErrorDef:
    return ErrorDef(name, message, tuple(parameters))


# ----------------------------------------------------------------------------------------------- enums

# the sortable fields, alphabetical (the consts are sorted by value: "+a" < "+b" < "-a" < "-b")
_ENTRY_ORDER_FIELDS = (
    "createdAt endDate moderationCount name partnerSortValue rank recent startDate totalRank updatedAt weight"
)
_MEDIA_ORDER_FIELDS = (
    "createdAt duration endDate lastPlayedAt mediaType moderationCount name partnerSortValue plays rank"
    " recent startDate totalRank updatedAt views weight"
)


def _const_name(field: str) -> str:
    """``partnerSortValue`` -> ``PARTNER_SORT_VALUE``."""
    return "".join(f"_{ch}" if ch.isupper() else ch.upper() for ch in field)


def _order_by(name: str, fields: str) -> EnumDef:
    """An ``…OrderBy`` string enum: every ``+field`` (ASC), then every ``-field`` (DESC)."""
    asc = [(f"{_const_name(field)}_ASC", f"+{field}") for field in fields.split()]
    desc = [(f"{_const_name(field)}_DESC", f"-{field}") for field in fields.split()]
    return _enum(name, "string", *asc, *desc)


_ENUMS = (
    _enum("KalturaSessionType", "int", ("USER", 0), ("ADMIN", 2)),
    _enum(
        "KalturaEntryStatus",
        "string",
        ("ERROR_IMPORTING", -2),
        ("ERROR_CONVERTING", -1),
        ("IMPORT", 0),
        ("PRECONVERT", 1),
        ("READY", 2),
        ("DELETED", 3),
        ("PENDING", 4),
        ("MODERATE", 5),
        ("BLOCKED", 6),
        ("NO_CONTENT", 7),
    ),
    _enum(
        "KalturaEntryType",
        "string",
        ("AUTOMATIC", -1),
        ("MEDIA_CLIP", 1),
        ("MIX", 2),
        ("PLAYLIST", 5),
        ("DATA", 6),
        ("LIVE_STREAM", 7),
        ("LIVE_CHANNEL", 8),
        ("DOCUMENT", 10),
    ),
    _enum(
        "KalturaMediaType",
        "int",
        ("VIDEO", 1),
        ("IMAGE", 2),
        ("AUDIO", 5),
        ("LIVE_STREAM_FLASH", 201),
        ("LIVE_STREAM_WINDOWS_MEDIA", 202),
        ("LIVE_STREAM_REAL_MEDIA", 203),
        ("LIVE_STREAM_QUICKTIME", 204),
    ),
    _enum(
        "KalturaEntryModerationStatus",
        "int",
        ("PENDING_MODERATION", 1),
        ("APPROVED", 2),
        ("REJECTED", 3),
        ("DELETED", 4),
        ("FLAGGED_FOR_REVIEW", 5),
        ("AUTO_APPROVED", 6),
    ),
    _enum("KalturaNullableBoolean", "int", ("NULL_VALUE", -1), ("FALSE_VALUE", 0), ("TRUE_VALUE", 1)),
    _enum(
        "KalturaUploadTokenStatus",
        "int",
        ("PENDING", 0),
        ("PARTIAL_UPLOAD", 1),
        ("FULL_UPLOAD", 2),
        ("CLOSED", 3),
        ("TIMED_OUT", 4),
        ("DELETED", 5),
    ),
    _enum(
        "KalturaEntryDisplayInSearchType",
        "int",
        ("RECYCLED", -2),
        ("SYSTEM", -1),
        ("NONE", 0),
        ("PARTNER_ONLY", 1),
        ("KALTURA_NETWORK", 2),
    ),
    _enum(
        "KalturaSourceType",
        "string",
        ("FILE", 1),
        ("WEBCAM", 2),
        ("URL", 5),
        ("SEARCH_PROVIDER", 6),
        ("AKAMAI_LIVE", 29),
        ("MANUAL_LIVE_STREAM", 30),
        ("AKAMAI_UNIVERSAL_LIVE", 31),
        ("LIVE_STREAM", 32),
        ("LIVE_CHANNEL", 33),
        ("RECORDED_LIVE", 34),
        ("CLIP", 35),
        ("KALTURA_RECORDED_LIVE", 36),
        ("LECTURE_CAPTURE", 37),
        ("LIVE_STREAM_ONTEXTDATA_CAPTIONS", 42),
    ),
    _order_by("KalturaBaseEntryOrderBy", _ENTRY_ORDER_FIELDS),
    _order_by("KalturaMediaEntryOrderBy", _MEDIA_ORDER_FIELDS),
    _order_by("KalturaUploadTokenOrderBy", "createdAt"),
)

# --------------------------------------------------------------------------------------------- classes

_STR = "string"

_CLASSES = (
    # sessions
    _cls(
        "KalturaSessionInfo",
        _p("ks", _STR, ro=True),
        _p("sessionType", "int", enum="KalturaSessionType", ro=True),
        _p("partnerId", "int", ro=True),
        _p("userId", _STR, ro=True),
        _p("expiry", "int", ro=True, desc="Absolute expiry time", time=True),
        _p("privileges", _STR, ro=True),
        desc="What a KS says about itself",
    ),
    _cls(
        "KalturaStartWidgetSessionResponse",
        _p("partnerId", "int", ro=True),
        _p("ks", _STR, ro=True),
        _p("userId", _STR, ro=True),
        desc="Result of session.startWidgetSession",
    ),
    # upload tokens
    _cls(
        "KalturaUploadToken",
        _p("id", _STR, ro=True),
        _p("partnerId", "int", ro=True),
        _p("userId", _STR, ro=True),
        _p("status", "int", enum="KalturaUploadTokenStatus", ro=True),
        _p("fileName", _STR, io=True),
        _p("fileSize", "float", io=True),
        _p("uploadedFileSize", "float", ro=True, desc="Bytes received so far"),
        _p("createdAt", "int", ro=True, time=True),
        _p("updatedAt", "int", ro=True, time=True),
        _p("uploadUrl", _STR, ro=True),
        _p("autoFinalize", "int", enum="KalturaNullableBoolean", io=True),
        _p("attachedObjectType", _STR, ro=True),
        _p("attachedObjectId", _STR, ro=True),
        desc="A staging slot for a (possibly chunked) file upload",
    ),
    # list responses
    _cls("KalturaListResponse", _p("totalCount", "int", ro=True), desc="Base of every list result"),
    _cls(
        "KalturaUploadTokenListResponse",
        _p("objects", "array", array="KalturaUploadToken", ro=True),
        base="KalturaListResponse",
    ),
    _cls(
        "KalturaBaseEntryListResponse",
        _p("objects", "array", array="KalturaBaseEntry", ro=True),
        base="KalturaListResponse",
    ),
    _cls(
        "KalturaMediaListResponse",
        _p("objects", "array", array="KalturaMediaEntry", ro=True),
        base="KalturaListResponse",
    ),
    # entries
    _cls(
        "KalturaBaseEntry",
        _p("id", _STR, ro=True),
        _p("name", _STR),
        _p("description", _STR),
        _p("partnerId", "int", ro=True),
        _p("userId", _STR, max_length=100, desc="Owner"),
        _p("creatorId", _STR, io=True),
        _p("tags", _STR),
        _p("adminTags", _STR),
        _p("status", _STR, enum="KalturaEntryStatus", ro=True),
        _p("moderationStatus", "int", enum="KalturaEntryModerationStatus", ro=True),
        _p("moderationCount", "int", ro=True),
        _p("type", _STR, enum="KalturaEntryType"),
        _p("createdAt", "int", ro=True, time=True),
        _p("updatedAt", "int", ro=True, time=True),
        _p("rank", "float", ro=True),
        _p("totalRank", "int", ro=True),
        _p("votes", "int", ro=True),
        _p("partnerData", _STR),
        _p("downloadUrl", _STR, ro=True),
        _p("searchText", _STR, ro=True),
        _p("version", "int", ro=True),
        _p("thumbnailUrl", _STR, ro=True),
        _p("referenceId", _STR),
        _p("partnerSortValue", "int"),
        _p("rootEntryId", _STR, ro=True),
        _p("operationAttributes", "array", array="KalturaOperationAttributes"),
        _p("displayInSearch", "int", enum="KalturaEntryDisplayInSearchType"),
        _p("blockAutoTranscript", "bool"),
        desc="Any entry",
    ),
    _cls(
        "KalturaOperationAttributes",
        abstract=True,
        desc="Clipping and other operations an entry was made with",
    ),
    _cls(
        "KalturaPlayableEntry",
        _p("plays", "int", ro=True),
        _p("views", "int", ro=True),
        _p("lastPlayedAt", "int", ro=True, time=True),
        _p("width", "int", ro=True),
        _p("height", "int", ro=True),
        _p("duration", "int", ro=True, desc="Seconds"),
        _p("msDuration", "int", desc="Milliseconds"),
        base="KalturaBaseEntry",
        desc="An entry that can be played",
    ),
    _cls(
        "KalturaMediaEntry",
        _p("mediaType", "int", enum="KalturaMediaType", io=True),
        _p("sourceType", _STR, enum="KalturaSourceType", io=True),
        _p("creditUserName", _STR),
        _p("creditUrl", _STR),
        _p("mediaDate", "int", ro=True, time=True),
        _p("dataUrl", _STR, ro=True),
        _p("flavorParamsIds", _STR, ro=True),
        _p("isTrimDisabled", "int", enum="KalturaNullableBoolean", ro=True),
        base="KalturaPlayableEntry",
        desc="A video, audio or image entry",
    ),
    # paging and filters
    _cls("KalturaPager", _p("pageSize", "int"), _p("pageIndex", "int"), desc="Paging of list results"),
    _cls("KalturaFilterPager", base="KalturaPager", desc="The pager list actions take"),
    _cls("KalturaFilter", _p("orderBy", _STR), abstract=True, desc="Base of every list filter"),
    _cls("KalturaRelatedFilter", base="KalturaFilter", abstract=True),
    _cls(
        "KalturaBaseEntryBaseFilter",
        _p("idEqual", _STR),
        _p("idIn", _STR),
        _p("idNotIn", _STR),
        _p("nameLike", _STR),
        _p("nameEqual", _STR),
        _p("partnerIdEqual", "int"),
        _p("userIdEqual", _STR),
        _p("userIdIn", _STR),
        _p("tagsLike", _STR),
        _p("adminTagsLike", _STR),
        _p("statusEqual", _STR, enum="KalturaEntryStatus"),
        _p("statusNotEqual", _STR, enum="KalturaEntryStatus"),
        _p("statusIn", _STR),
        _p("statusNotIn", _STR),
        _p("moderationStatusEqual", "int", enum="KalturaEntryModerationStatus"),
        _p("typeEqual", _STR, enum="KalturaEntryType"),
        _p("typeIn", _STR),
        _p("createdAtGreaterThanOrEqual", "int", time=True),
        _p("createdAtLessThanOrEqual", "int", time=True),
        _p("updatedAtGreaterThanOrEqual", "int", time=True),
        _p("updatedAtLessThanOrEqual", "int", time=True),
        _p("referenceIdEqual", _STR),
        _p("referenceIdIn", _STR),
        base="KalturaRelatedFilter",
        abstract=True,
    ),
    _cls("KalturaBaseEntryFilter", _p("freeText", _STR), base="KalturaBaseEntryBaseFilter"),
    _cls("KalturaPlayableEntryBaseFilter", base="KalturaBaseEntryFilter", abstract=True),
    _cls("KalturaPlayableEntryFilter", base="KalturaPlayableEntryBaseFilter"),
    _cls(
        "KalturaMediaEntryBaseFilter",
        _p("mediaTypeEqual", "int", enum="KalturaMediaType"),
        _p("mediaTypeIn", _STR),
        base="KalturaPlayableEntryFilter",
        abstract=True,
    ),
    _cls("KalturaMediaEntryFilter", base="KalturaMediaEntryBaseFilter"),
    _cls(
        "KalturaUploadTokenBaseFilter",
        _p("idEqual", _STR),
        _p("idIn", _STR),
        _p("userIdEqual", _STR),
        _p("statusEqual", "int", enum="KalturaUploadTokenStatus"),
        _p("statusIn", _STR),
        _p("fileNameEqual", _STR),
        _p("fileSizeEqual", "float"),
        base="KalturaFilter",
        abstract=True,
    ),
    _cls("KalturaUploadTokenFilter", base="KalturaUploadTokenBaseFilter"),
    # content resources
    _cls("KalturaResource", abstract=True, desc="Where new content comes from"),
    _cls("KalturaContentResource", base="KalturaResource", abstract=True),
    _cls("KalturaDataCenterContentResource", base="KalturaContentResource", abstract=True),
    _cls("KalturaGenericDataCenterContentResource", base="KalturaDataCenterContentResource", abstract=True),
    _cls(
        "KalturaUploadedFileTokenResource",
        _p("token", _STR, desc="An upload token id"),
        base="KalturaGenericDataCenterContentResource",
        desc="Content from a completed upload token",
    ),
    # errors
    _cls("KalturaApiExceptionArg", _p("name", _STR), _p("value", _STR), desc="One argument of an API error"),
)

# -------------------------------------------------------------------------------------------- services

_ENTRY_ID = _arg("entryId", _STR)
_VERSION = _arg("version", "int", default=-1)
_PAGER = _arg("pager", "KalturaFilterPager", default="null")
_TOKEN_ID = _arg("uploadTokenId", _STR)
_ENTRY_TYPE = _arg("type", _STR, enum="KalturaEntryType", default="null")

_SERVICES = (
    ServiceDef(
        "session",
        "session",
        (
            _act(
                "start",
                _arg("secret", _STR),
                _arg("userId", _STR, default=""),
                _arg("type", "int", enum="KalturaSessionType", default=0),
                _arg("partnerId", "int", default="null"),
                _arg("expiry", "int", default=86400),
                _arg("privileges", _STR, default="null"),
                result=_STR,
                session="none",
                throws=("START_SESSION_ERROR",),
                desc="Create a KS",
            ),
            _act(
                "get",
                _arg("session", _STR, default="null"),
                result="KalturaSessionInfo",
                throws=("START_SESSION_ERROR",),
                desc="Describe a KS (the request's by default)",
            ),
            _act("end", session="optional", desc="Invalidate the request's KS"),
            _act(
                "startWidgetSession",
                _arg("widgetId", _STR),
                _arg("expiry", "int", default=86400),
                result="KalturaStartWidgetSessionResponse",
                session="none",
                throws=("INVALID_WIDGET_ID", "MISSING_KS", "INVALID_KS", "START_WIDGET_SESSION_ERROR"),
                desc="Create a KS for a widget",
            ),
        ),
        description="Sessions (KS)",
    ),
    ServiceDef(
        "uploadtoken",
        "uploadToken",
        (
            _act(
                "add",
                _arg("uploadToken", "KalturaUploadToken", default="null"),
                result="KalturaUploadToken",
                desc="Create an upload token",
            ),
            _act(
                "upload",
                _TOKEN_ID,
                _arg("fileData", "file"),
                _arg("resume", "bool", default="false"),
                _arg("finalChunk", "bool", default="true"),
                _arg("resumeAt", "float", default=-1),
                result="KalturaUploadToken",
                desc="Upload a file or a chunk",
            ),
            _act("get", _TOKEN_ID, result="KalturaUploadToken"),
            _act(
                "list",
                _arg("filter", "KalturaUploadTokenFilter", default="null"),
                _PAGER,
                result="KalturaUploadTokenListResponse",
            ),
            _act("delete", _TOKEN_ID),
        ),
    ),
    ServiceDef(
        "baseentry",
        "baseEntry",
        (
            _act(
                "add",
                _arg("entry", "KalturaBaseEntry"),
                _ENTRY_TYPE,
                result="KalturaBaseEntry",
                throws=("ENTRY_TYPE_NOT_SUPPORTED",),
                desc="Create an entry with no content",
            ),
            _act(
                "addContent",
                _ENTRY_ID,
                _arg("resource", "KalturaResource"),
                result="KalturaBaseEntry",
                throws=("ENTRY_TYPE_NOT_SUPPORTED",),
                desc="Attach content to an entry",
            ),
            _act(
                "addFromUploadedFile",
                _arg("entry", "KalturaBaseEntry"),
                _TOKEN_ID,
                _ENTRY_TYPE,
                result="KalturaBaseEntry",
                desc="Create an entry from a fully uploaded token",
            ),
            _act("get", _ENTRY_ID, _VERSION, result="KalturaBaseEntry"),
            _act(
                "list",
                _arg("filter", "KalturaBaseEntryFilter", default="null"),
                _PAGER,
                result="KalturaBaseEntryListResponse",
            ),
            _act("count", _arg("filter", "KalturaBaseEntryFilter", default="null"), result="int"),
            _act(
                "update",
                _ENTRY_ID,
                _arg("baseEntry", "KalturaBaseEntry"),
                result="KalturaBaseEntry",
                throws=("ENTRY_ID_NOT_FOUND",),
            ),
            _act("delete", _ENTRY_ID),
        ),
        description="Entries of any type",
    ),
    ServiceDef(
        "media",
        "media",
        (
            _act("add", _arg("entry", "KalturaMediaEntry"), result="KalturaMediaEntry"),
            _act(
                "addContent",
                _ENTRY_ID,
                _arg("resource", "KalturaResource", default="null"),
                result="KalturaMediaEntry",
                throws=("ENTRY_ID_NOT_FOUND", "ENTRY_ALREADY_WITH_CONTENT"),
            ),
            _act("get", _ENTRY_ID, _VERSION, result="KalturaMediaEntry", throws=("ENTRY_ID_NOT_FOUND",)),
            _act(
                "list",
                _arg("filter", "KalturaMediaEntryFilter", default="null"),
                _PAGER,
                result="KalturaMediaListResponse",
            ),
            _act("count", _arg("filter", "KalturaMediaEntryFilter", default="null"), result="int"),
            _act(
                "update",
                _ENTRY_ID,
                _arg("mediaEntry", "KalturaMediaEntry"),
                result="KalturaMediaEntry",
                throws=("ENTRY_ID_NOT_FOUND",),
            ),
            _act("delete", _ENTRY_ID, throws=("ENTRY_ID_NOT_FOUND",)),
        ),
        description="Media entries (video, audio, image)",
    ),
    ServiceDef(
        "system",
        "system",
        (_act("ping", result="bool", session="none", desc="Health check"),),
        description="System helpers",
    ),
)

# ---------------------------------------------------------------------------------------------- errors

_PROP = "PROP_NAME"

# in the order of the real catalogue
_ERRORS = (
    _err("INTERNAL_SERVERL_ERROR", "Internal server error occurred"),
    _err("MISSING_KS", "Missing KS, session not established"),
    _err("INVALID_KS", 'Invalid KS "@KSID@", Error "@ERR_CODE@,@ERR_DESC@"', "KSID", "ERR_CODE", "ERR_DESC"),
    _err("SERVICE_NOT_SPECIFIED", "Service name was not specified, please specify one"),
    _err("SERVICE_DOES_NOT_EXISTS", 'Service "@SRV_NAME@" does not exists', "SRV_NAME"),
    _err("INVALID_PARAMETER_CHAR", 'Invalid char in "@XML_FIELD@" field', "XML_FIELD"),
    _err("ACTION_NOT_SPECIFIED", "Action name was not specified, please specify one"),
    _err(
        "ACTION_BLOCKED",
        'Action "@ACTION_NAME@" in service "@SERVICE_NAME@" is blocked',
        "ACTION_NAME",
        "SERVICE_NAME",
    ),
    _err(
        "ACTION_DOES_NOT_EXISTS",
        'Action "@ACTION_NAME@" does not exists for service "@SERVICE_NAME@"',
        "ACTION_NAME",
        "SERVICE_NAME",
    ),
    _err("INVALID_LANGUAGE_CODE", ' Invalid language code ["@LANGUAGE_CODE@"]', "LANGUAGE_CODE"),
    _err("MISSING_MANDATORY_PARAMETER", 'Missing parameter "@PARAM_NAME@"', "PARAM_NAME"),
    _err("INVALID_OBJECT_TYPE", 'Invalid object type "@INVALID_OBJ_TYPE@"', "INVALID_OBJ_TYPE"),
    _err(
        "INVALID_ENUM_VALUE",
        'Invalid enumeration value "@ENUM_VAL@" for parameter "@PARAM_NAME@", '
        'expecting enumeration type "@ENUM_TYPE@"',
        "ENUM_VAL",
        "PARAM_NAME",
        "ENUM_TYPE",
    ),
    _err(
        "OBJECT_TYPE_ABSTRACT",
        'The object type "@OBJ_TYPE@" is abstract, use one of the object implementations',
        "OBJ_TYPE",
    ),
    _err("PROPERTY_VALIDATION_CANNOT_BE_NULL", 'The property "@PROP_NAME@" cannot be null', _PROP),
    _err("PROPERTY_VALIDATION_UNTIL_NOT_VALID", 'The property "@PROP_NAME@" is not valid', _PROP),
    _err(
        "PROPERTY_VALIDATION_MIN_LENGTH",
        'The property "@PROP_NAME@" must have a min length of @MIN_LEN@ characters',
        _PROP,
        "MIN_LEN",
    ),
    _err(
        "PROPERTY_VALIDATION_MAX_LENGTH",
        'The property "@PROP_NAME@" cannot have more than @MAX_LEN@ characters',
        _PROP,
        "MAX_LEN",
    ),
    _err(
        "PROPERTY_VALIDATION_MIN_VALUE",
        'The property "@PROP_NAME@" must have a min value of @MIN_VAL@',
        _PROP,
        "MIN_VAL",
    ),
    _err(
        "PROPERTY_VALIDATION_MAX_VALUE",
        'The property "@PROP_NAME@" must have a max value of @MAX_VAL@',
        _PROP,
        "MAX_VAL",
    ),
    _err("PROPERTY_VALIDATION_NOT_UPDATABLE", 'The property "@PROP_NAME@" cannot be updated', _PROP),
    _err("ENTRY_ALREADY_WITH_CONTENT", "Entry already associated with content"),
    _err("ENTRY_TYPE_NOT_SUPPORTED", 'Entry type "@ENTRY_TYPE@" not supported', "ENTRY_TYPE"),
    _err(
        "UPLOADED_FILE_NOT_FOUND_BY_TOKEN",
        "The uploaded file was not found by the given token id, or was already used",
    ),
    _err("FILE_SIZE_EXCEEDED", 'File size exceeded "@FILE_SIZE@" ', "FILE_SIZE"),
    _err("INVALID_UPLOAD_TOKEN_ID", "Invalid upload token id"),
    _err("UPLOAD_ERROR", "Upload failed"),
    _err("UPLOAD_TOKEN_NOT_FOUND", "Upload token not found"),
    _err(
        "UPLOAD_TOKEN_INVALID_STATUS_FOR_UPLOAD",
        "Upload token is in an invalid status for uploading a file, maybe the file was already uploaded",
    ),
    _err(
        "UPLOAD_TOKEN_INVALID_STATUS_FOR_ADD_ENTRY",
        "Upload token is in an invalid status for adding entry, "
        "maybe the a file was not uploaded or the token was used",
    ),
    _err("UPLOAD_TOKEN_CANNOT_RESUME", "Cannot resume the upload, original file was not found"),
    _err("UPLOAD_TOKEN_CANNOT_MATCH_EXPECTED_SIZE", "Failed to match expected file size"),
    _err("UPLOAD_TOKEN_FILE_TYPE_RESTRICTED_FOR_UPLOAD", "Upload token is restricted due to the file type"),
    _err("UPLOAD_TOKEN_MISSING_FILE_SIZE", "FileSize is mandatory when enabling autoFinalize"),
    _err(
        "MAX_ALLOWED_CHUNK_COUNT_EXCEEDED",
        "Max allowed waiting chunks to be concatenated has exceeded allowed limit",
    ),
    _err(
        "UPLOAD_PASSED_MAX_RESUME_TIME_ALLOWED",
        "Max resume time of @MAX_RESUME_TIME@ seconds reached, cannot resume upload",
        "MAX_RESUME_TIME",
    ),
    _err("QUERY_EXCEEDED_MAX_MATCHES_ALLOWED", "Unable to generate list. max matches value was reached"),
    _err("START_SESSION_ERROR", "Error while starting session for partner [@PID@]", "PID"),
    _err("ENTRY_ID_NOT_FOUND", 'Entry id "@ENTRY_ID@" not found', "ENTRY_ID"),
    _err("INVALID_WIDGET_ID", "Unknown widget [@WIDGET_ID@]", "WIDGET_ID"),
    _err(
        "START_WIDGET_SESSION_ERROR", "error while starting session for widget id [@WIDGET_ID@]", "WIDGET_ID"
    ),
    _err("SERVICE_FORBIDDEN", "The access to service [@SERVICE@] is forbidden", "SERVICE"),
    _err(
        "SERVICE_FORBIDDEN_CONTENT_BLOCKED",
        "The access to this service is forbidden since the specified partner is blocked",
    ),
    _err("USER_BLOCKED", "this user is blocked"),
    _err(
        "PARTNER_ACCESS_FORBIDDEN",
        "Partner [@ACCESSING_PID@] cannot access partner [@ACCESSED_PID@]",
        "ACCESSING_PID",
        "ACCESSED_PID",
    ),
    _err("UNKNOWN_ROLE_ID", "Unknown role id"),
)

SCHEMA: Schema = Schema(
    api_version=API_VERSION,
    enums={enum.name: enum for enum in _ENUMS},
    classes={cls.name: cls for cls in _CLASSES},
    services={service.id: service for service in _SERVICES},
    errors={error.name: error for error in _ERRORS},
)
