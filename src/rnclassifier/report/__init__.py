"""Reports: self-contained HTML (no external URLs, scripts or fonts) with inline PNG plots."""
