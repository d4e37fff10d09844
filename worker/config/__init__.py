"""The retention configuration: the catalogue (Annex A), product mappings, customer files.

One module per idea:

- `values`: the scalar values and their bounds (SQL identifiers, periods, dates, tenants);
- `models`: what a valid file looks like (re-exported here: `from worker.config import Rule`);
- `rules`: what a valid rule looks like (stages, time basis, anonymisations; re-exported by
  `models`);
- `yamlsafe`: the YAML loader, bounded in size, nesting and alias expansion, that refuses
  duplicate keys, tags and YAML 1.1 surprises;
- `files`: reading one file into a model, every problem located by file, path and line;
- `checks`: the checks across files (Annex A, rules, customer settings);
- `unique`: no two customers share a tenant value or a database;
- `load`: the whole directory (`load_config`), which never raises for bad content.

`worker.configload` and `worker.configfiles` remain as the old import paths of `load` and
`files`.
"""

from worker.config.models import (
    Action,
    After,
    Catalogue,
    CatalogueProduct,
    Category,
    Customer,
    CustomerProduct,
    DatabaseRef,
    Dependent,
    Floor,
    Kind,
    Masking,
    PeriodSpec,
    ProductMapping,
    Rule,
    Schedule,
    SettingPeriod,
    Stage,
    Strategy,
    Subject,
    Tenancy,
)
from worker.config.values import ABSURD

__all__ = [
    "ABSURD",
    "Action",
    "After",
    "Catalogue",
    "CatalogueProduct",
    "Category",
    "Customer",
    "CustomerProduct",
    "DatabaseRef",
    "Dependent",
    "Floor",
    "Kind",
    "Masking",
    "PeriodSpec",
    "ProductMapping",
    "Rule",
    "Schedule",
    "SettingPeriod",
    "Stage",
    "Strategy",
    "Subject",
    "Tenancy",
]
