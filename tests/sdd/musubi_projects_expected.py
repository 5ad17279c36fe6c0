"""What a person counts in the three MUSUBI projects of tests/fixtures/musubi-projects.

Written down by reading the files (grep for ID-looking lines, then each one checked by eye),
not produced by the parser. Per file, in file order. What is NOT here, and why:

- MONJYU ``features/FEAT-00x-*.md``: the tables under "1.2 関連要件" list requirements that
  ``specs/MONJYU-MECE-requirements.md`` defines, and the "6. 実装タスク" tables repeat
  ``specs/MONJYU-tasks.md`` (except TASK-003-09 and TASK-005-09, which only the FEAT files
  have). MONJYU-MECE's own summary says 166 requirements; its tables hold 174.
- YAGOKORO ``REQ-002-yagokoro-v2.md``: ``### 3.1 FR-001: …`` headings group the ``FR-001-0x``
  rows under them; ``# REQ-002: …`` is the document's title.
- YAGOKORO ``REQ-003-yagokoro-v3.md``: the "8.1 Requirements Traceability Matrix" names
  REQ-003-001…030, but the requirements above it are REQ-002-001…030 (a real inconsistency of
  the project, reported by ``trace check``).
- Document IDs (``# DES-002: …``, ``**ID**: DESIGN-001``) are in DESIGN_DOCS, not ADRS.
"""

from __future__ import annotations

# fmt: off
MONJYU_REQUIREMENTS: dict[str, list[str]] = {
    "storage/features/FEAT-010-entity-extractor.md": [
        "FR-010-001", "FR-010-002", "FR-010-003", "FR-010-004",
    ],
    "storage/features/FEAT-011-relationship-extractor.md": [
        "FR-011-001", "FR-011-002", "FR-011-003",
    ],
    "storage/features/REQ-MONJYU-001-requirements.md": [
        "REQ-IDX-001", "REQ-IDX-002", "REQ-IDX-003", "REQ-IDX-004", "REQ-IDX-005", "REQ-IDX-006",
        "REQ-IDX-007", "REQ-IDX-008", "REQ-IDX-009", "REQ-IDX-010", "REQ-IDX-011", "REQ-IDX-012",
        "REQ-QRY-001", "REQ-QRY-002", "REQ-QRY-003", "REQ-QRY-004", "REQ-QRY-005", "REQ-QRY-006",
        "REQ-QRY-007", "REQ-QRY-008", "REQ-DATA-001", "REQ-STR-001", "REQ-STR-002", "REQ-STR-003",
        "REQ-LLM-001", "REQ-LLM-002", "REQ-LLM-003", "REQ-LLM-004", "REQ-CLI-001", "REQ-CLI-002",
        "REQ-CLI-003", "REQ-API-001", "REQ-API-002", "REQ-PROMPT-001", "REQ-PROMPT-002",
        "REQ-ERR-001", "REQ-ERR-002", "NFR-PERF-001", "NFR-PERF-002", "NFR-PERF-003",
        "NFR-PERF-004", "NFR-SCALE-001", "NFR-SCALE-002", "NFR-SCALE-003", "NFR-SCALE-004",
        "NFR-COMPAT-001", "NFR-COMPAT-002", "NFR-COMPAT-003", "NFR-SEC-001", "NFR-SEC-002",
    ],
    "storage/specs/MONJYU-MECE-requirements.md": [
        "FR-DOC-INP-001", "FR-DOC-INP-002", "FR-DOC-INP-003", "FR-DOC-INP-004", "FR-DOC-INP-005",
        "FR-DOC-INP-006", "FR-DOC-PRE-001", "FR-DOC-PRE-002", "FR-DOC-PRE-003", "FR-DOC-PRE-004",
        "FR-DOC-PRE-005", "FR-DOC-PRE-101", "FR-DOC-PRE-102", "FR-DOC-PRE-103", "FR-DOC-PRE-104",
        "FR-DOC-PRE-105", "FR-DOC-PRE-106", "FR-DOC-PRE-107", "FR-DOC-OUT-001", "FR-DOC-OUT-002",
        "FR-DOC-OUT-003", "FR-DOC-OUT-004", "FR-IDX-L0-001", "FR-IDX-L0-002", "FR-IDX-L0-003",
        "FR-IDX-L0-004", "FR-IDX-L1-001", "FR-IDX-L1-002", "FR-IDX-L1-003", "FR-IDX-L1-004",
        "FR-IDX-L1-005", "FR-IDX-L2-001", "FR-IDX-L2-002", "FR-IDX-L2-003", "FR-IDX-L2-004",
        "FR-IDX-L2-005", "FR-IDX-L3-001", "FR-IDX-L3-002", "FR-IDX-L3-003", "FR-IDX-L3-004",
        "FR-IDX-L4-001", "FR-IDX-L4-002", "FR-IDX-L4-003", "FR-IDX-L4-004", "FR-QRY-VEC-001",
        "FR-QRY-VEC-002", "FR-QRY-VEC-003", "FR-QRY-VEC-004", "FR-QRY-LZY-001", "FR-QRY-LZY-002",
        "FR-QRY-LZY-003", "FR-QRY-LZY-004", "FR-QRY-LZY-005", "FR-QRY-LZY-006", "FR-QRY-GRP-L01",
        "FR-QRY-GRP-L02", "FR-QRY-GRP-L03", "FR-QRY-GRP-L04", "FR-QRY-GRP-L05", "FR-QRY-GRP-G01",
        "FR-QRY-GRP-G02", "FR-QRY-GRP-G03", "FR-QRY-GRP-G04", "FR-QRY-HYB-001", "FR-QRY-HYB-002",
        "FR-QRY-HYB-003", "FR-QRY-HYB-004", "FR-QRY-UNI-001", "FR-QRY-UNI-002", "FR-QRY-UNI-003",
        "FR-QRY-UNI-004", "FR-CIT-BLD-001", "FR-CIT-BLD-002", "FR-CIT-BLD-003", "FR-CIT-BLD-004",
        "FR-CIT-BLD-005", "FR-CIT-ANL-001", "FR-CIT-ANL-002", "FR-CIT-ANL-003", "FR-CIT-ANL-004",
        "FR-CIT-ANL-005", "FR-CIT-ANL-006", "FR-API-PY-001", "FR-API-PY-002", "FR-API-PY-003",
        "FR-API-PY-004", "FR-API-PY-005", "FR-API-PY-006", "FR-API-PY-007", "FR-API-CLI-001",
        "FR-API-CLI-002", "FR-API-CLI-003", "FR-API-CLI-004", "FR-API-CLI-005", "FR-API-CLI-006",
        "FR-API-MCP-001", "FR-API-MCP-002", "FR-API-MCP-003", "FR-API-MCP-004", "FR-API-MCP-005",
        "FR-API-MCP-006", "FR-API-MCP-007", "FR-API-MCP-008", "FR-API-MCP-009", "FR-API-MCP-010",
        "FR-API-RST-001", "FR-API-RST-002", "FR-API-RST-003", "FR-API-RST-004", "FR-API-RST-005",
        "FR-API-RST-006", "NFR-PERF-001", "NFR-PERF-002", "NFR-PERF-003", "NFR-PERF-004",
        "NFR-PERF-005", "NFR-PERF-006", "NFR-PERF-007", "NFR-SCAL-001", "NFR-SCAL-002",
        "NFR-SCAL-003", "NFR-SCAL-004", "NFR-SCAL-005", "NFR-COST-001", "NFR-COST-002",
        "NFR-COST-003", "NFR-COST-004", "NFR-COST-005", "NFR-QUAL-001", "NFR-QUAL-002",
        "NFR-QUAL-003", "NFR-QUAL-004", "NFR-QUAL-005", "NFR-QUAL-006", "NFR-QUAL-007",
        "NFR-SEC-001", "NFR-SEC-002", "NFR-SEC-003", "NFR-SEC-004", "NFR-SEC-005", "NFR-SEC-006",
        "NFR-SEC-007", "NFR-AVL-001", "NFR-AVL-002", "NFR-AVL-003", "NFR-AVL-004", "NFR-AVL-005",
        "NFR-AVL-006", "NFR-OPS-001", "NFR-OPS-002", "NFR-OPS-003", "NFR-OPS-004", "NFR-OPS-005",
        "NFR-OPS-006", "NFR-OPS-007", "NFR-EXT-001", "NFR-EXT-002", "NFR-EXT-003", "NFR-EXT-004",
        "NFR-EXT-005", "NFR-EXT-006", "NFR-EXT-007", "NFR-TST-001", "NFR-TST-002", "NFR-TST-003",
        "NFR-TST-004", "NFR-TST-005", "NFR-TST-006", "NFR-DOC-001", "NFR-DOC-002", "NFR-DOC-003",
        "NFR-DOC-004", "NFR-DOC-005", "NFR-DOC-006",
    ],
}
MONJYU_ADRS: dict[str, list[str]] = {
}
MONJYU_TASKS: dict[str, list[str]] = {
    "storage/features/FEAT-003-index-level1.md": [
        "TASK-003-09",
    ],
    "storage/features/FEAT-005-lazy-search.md": [
        "TASK-005-09",
    ],
    "storage/specs/MONJYU-tasks.md": [
        "TASK-001-01", "TASK-001-02", "TASK-001-03", "TASK-001-04", "TASK-001-05", "TASK-001-06",
        "TASK-001-07", "TASK-001-08", "TASK-002-01", "TASK-002-02", "TASK-002-03", "TASK-002-04",
        "TASK-002-05", "TASK-002-06", "TASK-002-07", "TASK-002-08", "TASK-002-09", "TASK-002-10",
        "TASK-003-01", "TASK-003-02", "TASK-003-03", "TASK-003-04", "TASK-003-05", "TASK-003-06",
        "TASK-003-07", "TASK-003-08", "TASK-004-01", "TASK-004-02", "TASK-004-03", "TASK-004-04",
        "TASK-004-05", "TASK-004-06", "TASK-004-07", "TASK-004-08", "TASK-005-01", "TASK-005-02",
        "TASK-005-03", "TASK-005-04", "TASK-005-05", "TASK-005-06", "TASK-005-07", "TASK-005-08",
        "TASK-006-01", "TASK-006-02", "TASK-006-03", "TASK-006-04", "TASK-006-05", "TASK-006-06",
        "TASK-006-07", "TASK-006-08", "TASK-007-01", "TASK-007-02", "TASK-007-03", "TASK-007-04",
        "TASK-007-05", "TASK-007-06", "TASK-007-07", "TASK-007-08", "TASK-008-01", "TASK-008-02",
        "TASK-008-03", "TASK-008-04", "TASK-008-05", "TASK-008-06", "TASK-008-07", "TASK-008-08",
        "TASK-008-09", "TASK-009-01", "TASK-009-02", "TASK-009-03", "TASK-009-04", "TASK-009-05",
        "TASK-009-06", "TASK-009-07", "TASK-009-08", "TASK-009-09", "TASK-009-10",
    ],
}
YAGOKORO_REQUIREMENTS: dict[str, list[str]] = {
    "storage/specs/REQ-001-genai-graphrag-system.md": [
        "REQ-001-KG-001", "REQ-001-KG-002", "REQ-001-KG-003", "REQ-001-KG-004", "REQ-001-GR-001",
        "REQ-001-GR-002", "REQ-001-GR-003", "REQ-001-GR-004", "REQ-001-GR-005", "REQ-001-MCP-001",
        "REQ-001-MCP-002", "REQ-001-MCP-003", "REQ-001-CLI-001", "REQ-001-CLI-002",
        "REQ-001-DATA-001", "REQ-001-DATA-002", "REQ-001-DATA-003", "REQ-001-SYS-001",
        "REQ-001-SYS-002", "REQ-001-SYS-003", "REQ-001-ERR-001", "REQ-001-ERR-002",
        "REQ-001-SEC-001", "REQ-001-SEC-002", "REQ-001-NFR-001", "REQ-001-NFR-002",
        "REQ-001-NFR-003", "REQ-001-NFR-004", "REQ-001-NFR-005", "REQ-001-NFR-006",
        "REQ-001-NFR-007", "REQ-001-NFR-008", "REQ-001-NFR-009", "REQ-001-NFR-010",
        "REQ-001-NFR-011", "REQ-001-NFR-012", "REQ-001-NFR-013", "REQ-001-NFR-014",
        "REQ-001-NFR-015", "REQ-001-NFR-016", "REQ-001-NFR-017",
    ],
    "storage/specs/REQ-002-phase2-enhancements.md": [
        "REQ-002-NLQ-001", "REQ-002-NLQ-002", "REQ-002-NLQ-003", "REQ-002-GGR-001",
        "REQ-002-GGR-002", "REQ-002-GGR-003", "REQ-002-HAL-001", "REQ-002-HAL-002",
        "REQ-002-HAL-003", "REQ-002-VIS-001", "REQ-002-VIS-002", "REQ-002-VIS-003",
        "REQ-002-VIS-004", "REQ-002-AUTO-001", "REQ-002-AUTO-002", "REQ-002-AUTO-003",
        "REQ-002-AUTO-004", "REQ-002-API-001", "REQ-002-API-002", "REQ-002-NFR-001",
        "REQ-002-NFR-002", "REQ-002-NFR-003", "REQ-002-NFR-004", "REQ-002-NFR-005",
        "REQ-002-NFR-006", "REQ-002-NFR-007", "REQ-002-NFR-008", "REQ-002-NFR-009",
    ],
    "storage/specs/REQ-002-yagokoro-v2.md": [
        "FR-001-01", "FR-001-02", "FR-001-03", "FR-001-04", "FR-001-05", "FR-001-06", "FR-001-07",
        "FR-001-08", "FR-002-01", "FR-002-02", "FR-002-03", "FR-002-04", "FR-002-05", "FR-002-06",
        "FR-002-07", "FR-003-01", "FR-003-02", "FR-003-03", "FR-003-04", "FR-003-05", "FR-003-06",
        "FR-004-01", "FR-004-02", "FR-004-03", "FR-004-04", "FR-004-05", "FR-004-06", "FR-005-01",
        "FR-005-02", "FR-005-03", "FR-005-04", "FR-005-05", "FR-006-01", "FR-006-02", "FR-006-03",
        "FR-006-04", "FR-006-05", "NFR-001", "NFR-002", "NFR-003", "NFR-004", "NFR-005", "NFR-006",
        "NFR-007", "NFR-008", "NFR-009", "NFR-010", "NFR-011", "NFR-012", "NFR-013", "NFR-014",
        "NFR-015", "NFR-016", "NFR-017",
    ],
    "storage/specs/REQ-003-yagokoro-v3.md": [
        "REQ-002-001", "REQ-002-002", "REQ-002-003", "REQ-002-004", "REQ-002-024", "REQ-002-005",
        "REQ-002-006", "REQ-002-007", "REQ-002-008", "REQ-002-009", "REQ-002-010", "REQ-002-011",
        "REQ-002-012", "REQ-002-013", "REQ-002-025", "REQ-002-026", "REQ-002-014", "REQ-002-015",
        "REQ-002-016", "REQ-002-017", "REQ-002-018", "REQ-002-019", "REQ-002-020", "REQ-002-021",
        "REQ-002-022", "REQ-002-023", "REQ-002-027", "REQ-002-028", "REQ-002-029", "REQ-002-030",
    ],
    "storage/specs/v4.0.0-requirements.md": [
        "REQ-004-01", "REQ-004-02", "REQ-004-03", "REQ-004-04", "REQ-004-05", "REQ-004-06",
        "REQ-004-07", "REQ-004-N01", "REQ-004-N02", "REQ-005-01", "REQ-005-02", "REQ-005-03",
        "REQ-005-04", "REQ-005-05", "REQ-005-06", "REQ-005-07", "REQ-005-08", "REQ-005-N01",
        "REQ-005-N02",
    ],
    "storage/specs/v5.0.0-requirements.md": [
        "REQ-008-01", "REQ-008-02", "REQ-008-03", "REQ-008-04", "REQ-008-05", "REQ-008-06",
        "REQ-008-07", "REQ-008-08", "REQ-008-09", "REQ-008-10", "REQ-008-11", "REQ-008-12",
        "REQ-009-01", "REQ-009-02", "REQ-009-03", "REQ-009-04", "REQ-009-05", "REQ-009-06",
        "REQ-009-07", "REQ-009-08", "REQ-009-09", "REQ-009-10", "REQ-009-11", "REQ-009-12",
        "REQ-009-13", "REQ-010-01", "REQ-010-02", "REQ-010-03", "REQ-010-04", "REQ-010-05",
        "REQ-010-06", "REQ-010-07", "REQ-010-08", "REQ-010-09", "REQ-010-10", "REQ-010-11",
        "REQ-010-12", "REQ-010-13",
    ],
}
YAGOKORO_ADRS: dict[str, list[str]] = {
    "storage/specs/DES-001-genai-graphrag-system.md": [
        "ADR-001", "ADR-002", "ADR-003", "ADR-004", "ADR-005", "ADR-006",
    ],
    "storage/specs/DES-002-phase2-enhancements.md": [
        "ADR-005", "ADR-006", "ADR-007", "ADR-008",
    ],
    "storage/specs/DES-002-yagokoro-v2.md": [
        "ADR-001", "ADR-002", "ADR-003", "ADR-004",
    ],
    "storage/specs/DES-003-yagokoro-v3.md": [
        "ADR-001", "ADR-002", "ADR-003", "ADR-004", "ADR-005",
    ],
    "storage/specs/v4.0.0-design.md": [
        "ADR-001", "ADR-002", "ADR-003",
    ],
    "storage/specs/v5.0.0-design.md": [
        "ADR-004", "ADR-005", "ADR-006", "ADR-007", "ADR-008", "ADR-009", "ADR-010", "ADR-011",
    ],
}
YAGOKORO_TASKS: dict[str, list[str]] = {
    "storage/specs/TASKS-001-genai-graphrag-system.md": [
        "TASK-001", "TASK-002", "TASK-003", "TASK-004", "TASK-005", "TASK-006", "TASK-007",
        "TASK-008", "TASK-009", "TASK-010", "TASK-011", "TASK-012", "TASK-013", "TASK-014",
        "TASK-015", "TASK-016", "TASK-017", "TASK-018", "TASK-019", "TASK-020", "TASK-021",
        "TASK-022", "TASK-023", "TASK-024",
    ],
    "storage/specs/TASKS-002-phase2-enhancements.md": [
        "TASK-101", "TASK-102", "TASK-103", "TASK-104", "TASK-105", "TASK-201", "TASK-202",
        "TASK-203", "TASK-204", "TASK-205", "TASK-301", "TASK-302", "TASK-303", "TASK-304",
        "TASK-305", "TASK-401", "TASK-402", "TASK-403", "TASK-404", "TASK-405", "TASK-501",
        "TASK-502", "TASK-503",
    ],
    "storage/specs/TASKS-002-yagokoro-v2.md": [
        "TASK-V2-001", "TASK-V2-002", "TASK-V2-003", "TASK-V2-004", "TASK-V2-005", "TASK-V2-006",
        "TASK-V2-007", "TASK-V2-008", "TASK-V2-009", "TASK-V2-010", "TASK-V2-011", "TASK-V2-012",
        "TASK-V2-013", "TASK-V2-014", "TASK-V2-015", "TASK-V2-016", "TASK-V2-017", "TASK-V2-018",
        "TASK-V2-019", "TASK-V2-020", "TASK-V2-021", "TASK-V2-022", "TASK-V2-023", "TASK-V2-024",
        "TASK-V2-025", "TASK-V2-026", "TASK-V2-027", "TASK-V2-028", "TASK-V2-029", "TASK-V2-030",
        "TASK-V2-031", "TASK-V2-032", "TASK-V2-033", "TASK-V2-034", "TASK-V2-035", "TASK-V2-036",
    ],
    "storage/specs/TASKS-003-yagokoro-v3.md": [
        "TASK-V3-001", "TASK-V3-002", "TASK-V3-003", "TASK-V3-004", "TASK-V3-005", "TASK-V3-006",
        "TASK-V3-007", "TASK-V3-008", "TASK-V3-009", "TASK-V3-010", "TASK-V3-011", "TASK-V3-012",
        "TASK-V3-013", "TASK-V3-014", "TASK-V3-015", "TASK-V3-016", "TASK-V3-017", "TASK-V3-018",
        "TASK-V3-019", "TASK-V3-020", "TASK-V3-021", "TASK-V3-022", "TASK-V3-023", "TASK-V3-024",
        "TASK-V3-025", "TASK-V3-026", "TASK-V3-027", "TASK-V3-028", "TASK-V3-029", "TASK-V3-030",
        "TASK-V3-031", "TASK-V3-032", "TASK-V3-033", "TASK-V3-034", "TASK-V3-035", "TASK-V3-036",
        "TASK-V3-037", "TASK-V3-038", "TASK-V3-039", "TASK-V3-040", "TASK-V3-041", "TASK-V3-042",
        "TASK-V3-043", "TASK-V3-044", "TASK-V3-045", "TASK-V3-046", "TASK-V3-047", "TASK-V3-048",
        "TASK-V3-049", "TASK-V3-050",
    ],
    "storage/specs/v4.0.0-tasks.md": [
        "T-101", "T-102", "T-103", "T-104", "T-105", "T-106", "T-107", "T-108", "T-201", "T-202",
        "T-203", "T-204", "T-205", "T-206", "T-207", "T-208", "T-209", "T-210", "T-211", "T-212",
        "T-301", "T-302", "T-303", "T-304", "T-305", "T-306", "T-307", "T-308", "T-309", "T-310",
        "T-311", "T-312", "T-313", "T-314", "T-401", "T-402", "T-403", "T-404", "T-405", "T-406",
        "T-407", "T-408", "T-409", "T-410", "T-411", "T-412", "T-413", "T-414", "T-415", "T-416",
    ],
    "storage/specs/v5.0.0-tasks.md": [
        "TASK-01-ML-001", "TASK-01-ML-002", "TASK-01-ML-003", "TASK-01-ML-004", "TASK-01-ML-005",
        "TASK-01-ML-006", "TASK-01-ML-007", "TASK-01-ML-008", "TASK-02-ML-009", "TASK-02-ML-010",
        "TASK-02-ML-011", "TASK-02-ML-012", "TASK-02-ML-013", "TASK-02-ML-014", "TASK-02-ML-015",
        "TASK-03-CT-001", "TASK-03-CT-002", "TASK-03-CT-003", "TASK-03-CT-004", "TASK-03-CT-005",
        "TASK-03-CT-006", "TASK-04-CT-007", "TASK-04-CT-008", "TASK-04-CT-009", "TASK-04-CT-010",
        "TASK-04-CT-011", "TASK-04-CT-012", "TASK-04-CT-013", "TASK-04-CT-014", "TASK-05-TP-001",
        "TASK-05-TP-002", "TASK-05-TP-003", "TASK-05-TP-004", "TASK-05-TP-005", "TASK-05-TP-006",
        "TASK-06-TP-007", "TASK-06-TP-008", "TASK-06-TP-009", "TASK-06-TP-010", "TASK-06-TP-011",
        "TASK-06-TP-012", "TASK-06-TP-013", "TASK-07-IN-001", "TASK-07-IN-002", "TASK-07-IN-003",
        "TASK-07-IN-004", "TASK-08-IN-005", "TASK-08-IN-006", "TASK-08-IN-007", "TASK-08-IN-008",
        "TASK-08-IN-009", "TASK-08-IN-010",
    ],
}
TENJIN_REQUIREMENTS: dict[str, list[str]] = {
    "storage/specs/REQ-001-tenjin-education-graphrag.md": [
        "REQ-TOOL-001", "REQ-TOOL-002", "REQ-TOOL-003", "REQ-TOOL-004", "REQ-TOOL-005",
        "REQ-TOOL-006", "REQ-TOOL-007", "REQ-TOOL-008", "REQ-TOOL-009", "REQ-TOOL-010",
        "REQ-TOOL-011", "REQ-TOOL-012", "REQ-TOOL-013", "REQ-TOOL-014", "REQ-TOOL-015",
        "REQ-TOOL-016", "REQ-TOOL-017", "REQ-TOOL-018", "REQ-TOOL-019", "REQ-TOOL-020",
        "REQ-TOOL-021", "REQ-TOOL-022", "REQ-TOOL-023", "REQ-TOOL-024", "REQ-TOOL-025",
        "REQ-TOOL-026", "REQ-TOOL-027", "REQ-TOOL-028", "REQ-TOOL-029", "REQ-TOOL-030",
        "REQ-TOOL-031", "REQ-TOOL-032", "REQ-TOOL-033", "REQ-RES-001", "REQ-RES-002",
        "REQ-PRM-001", "REQ-PRM-002", "REQ-NFR-001", "REQ-NFR-002", "REQ-NFR-003", "REQ-NFR-004",
        "REQ-NFR-005", "REQ-NFR-006", "REQ-NFR-007", "REQ-NFR-008", "REQ-NFR-009", "REQ-NFR-010",
        "REQ-NFR-011", "REQ-NFR-012", "REQ-NFR-013", "REQ-NFR-014", "REQ-NFR-015", "REQ-NFR-016",
        "REQ-NFR-017",
    ],
    "storage/specs/REQ-002-theory-editor.md": [
        "FR-CRUD-001", "FR-CRUD-002", "FR-CRUD-003", "FR-CRUD-004", "FR-CRUD-005", "FR-SEARCH-001",
        "FR-SEARCH-002", "FR-SEARCH-003", "FR-IO-001", "FR-IO-002", "FR-VERSION-001",
        "FR-VERSION-002", "FR-VERSION-003", "FR-VERSION-004", "FR-VERSION-005", "FR-ERROR-001",
        "FR-ERROR-002", "FR-ERROR-003", "FR-CLI-001", "FR-CLI-002", "FR-CLI-003", "FR-CLI-004",
        "NFR-USABILITY-001", "NFR-USABILITY-002", "NFR-PERFORMANCE-001", "NFR-RELIABILITY-001",
        "NFR-COMPATIBILITY-001", "NFR-ACCESSIBILITY-001", "NFR-ACCESSIBILITY-002",
        "NFR-SECURITY-001", "NFR-SECURITY-002",
    ],
}
TENJIN_ADRS: dict[str, list[str]] = {
    "storage/specs/ADR-001-esperanto-llm-integration.md": [
        "ADR-001",
    ],
    "storage/specs/ADR-002-hybrid-rag-architecture.md": [
        "ADR-002",
    ],
    "storage/specs/ADR-003-clean-architecture.md": [
        "ADR-003",
    ],
    "storage/specs/DESIGN-001-architecture.md": [
        "ADR-001", "ADR-002", "ADR-003",
    ],
    "storage/specs/DESIGN-002-theory-editor.md": [
        "ADR-002-001", "ADR-002-002", "ADR-002-003", "ADR-002-004",
    ],
}
TENJIN_TASKS: dict[str, list[str]] = {
    "storage/specs/TASKS-001-implementation.md": [
        "TASK-1.1", "TASK-1.2", "TASK-1.3", "TASK-2.1", "TASK-2.2", "TASK-2.3", "TASK-3.1",
        "TASK-3.2", "TASK-3.3", "TASK-3.4", "TASK-3.5", "TASK-4.1", "TASK-4.2", "TASK-4.3",
        "TASK-4.4", "TASK-4.5", "TASK-4.6", "TASK-4.7", "TASK-5.1", "TASK-5.2", "TASK-5.3",
        "TASK-5.4", "TASK-5.5", "TASK-5.6", "TASK-5.7", "TASK-5.8", "TASK-5.9", "TASK-6.1",
        "TASK-6.2", "TASK-6.3", "TASK-7.1", "TASK-7.2", "TASK-7.3", "TASK-8.1", "TASK-8.2",
        "TASK-8.3",
    ],
    "storage/specs/TASKS-002-theory-editor.md": [
        "TASK-001", "TASK-002", "TASK-003", "TASK-004", "TASK-005", "TASK-006", "TASK-007",
        "TASK-008", "TASK-009", "TASK-010", "TASK-011", "TASK-012", "TASK-013", "TASK-014",
        "TASK-015", "TASK-016",
    ],
}
# fmt: on

# The design documents of each project with their own ID (None: the file has none).
DESIGN_DOCS: dict[str, dict[str, str | None]] = {
    "MONJYU": {
        "storage/features/FEAT-001-document-processing.md": "FEAT-001",
        "storage/features/FEAT-002-index-level0.md": "FEAT-002",
        "storage/features/FEAT-003-index-level1.md": "FEAT-003",
        "storage/features/FEAT-004-vector-search.md": "FEAT-004",
        "storage/features/FEAT-005-lazy-search.md": "FEAT-005",
        "storage/features/FEAT-006-citation-network.md": "FEAT-006",
        "storage/features/FEAT-007-python-api.md": "FEAT-007",
        "storage/features/FEAT-008-cli.md": "FEAT-008",
        "storage/features/FEAT-009-mcp-server.md": "FEAT-009",
        "storage/features/FEAT-010-entity-extractor.md": "FEAT-010",
        "storage/features/FEAT-011-relationship-extractor.md": "FEAT-011",
        "storage/features/FEAT-012-community-detector.md": "FEAT-012",
        "storage/features/FEAT-013-community-report-generator.md": "FEAT-013",
        "storage/features/FEAT-014-query-router.md": "FEAT-014",
        "storage/features/FEAT-015-unified-controller.md": "FEAT-015",
        "storage/features/FEAT-016-vector-search.md": "FEAT-016",
        "storage/features/FEAT-017-global-search.md": "FEAT-017",
        "storage/features/FEAT-018-local-search.md": "FEAT-018",
    },
    "YAGOKORO": {
        "storage/specs/DES-001-genai-graphrag-system.md": "DES-001",
        "storage/specs/DES-002-lazygraphrag.md": "DES-002",
        "storage/specs/DES-002-phase2-enhancements.md": "DES-002",
        "storage/specs/DES-002-yagokoro-v2.md": "DES-002",
        "storage/specs/DES-003-yagokoro-v3.md": "DES-003",
        "storage/specs/v4.0.0-design.md": None,
        "storage/specs/v5.0.0-design.md": None,
    },
    "TENJIN": {
        "storage/specs/ADR-001-esperanto-llm-integration.md": "ADR-001",
        "storage/specs/ADR-002-hybrid-rag-architecture.md": "ADR-002",
        "storage/specs/ADR-003-clean-architecture.md": "ADR-003",
        "storage/specs/DESIGN-001-architecture.md": "DESIGN-001",
        "storage/specs/DESIGN-002-theory-editor.md": "DESIGN-002",
    },
}
