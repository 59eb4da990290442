//! `corps.JsonFileType`: an organization whose departments and members come
//! from an HR export file (JSON), synced into the app's org store through
//! the runtime's shared sync engine (`corps.syncSnapshot`), so it gets the
//! same diff, safety checks and store as the WeCom and DingTalk types.
//!
//! Instance config (`<Instance>.json`):
//! ```json
//! { "file": "hr/export.json", "provider": "hrfile", "sync": { "maxOfflineRatio": 0.2 } }
//! ```
//! `file` is relative to the app folder. `corpId` overrides the file's own.
//!
//! The export:
//! ```json
//! { "corpId": "acme",
//!   "departments": [ { "id": 1, "name": "Acme" },
//!                    { "id": 2, "name": "R&D", "parentId": 1, "order": 10, "leaders": ["E001"] } ],
//!   "members": [ { "id": "E001", "name": "Zhang San", "departments": [2], "position": "Lead",
//!                  "email": "zs@acme.example", "mobile": "+86 138 0000 0000", "jobNumber": "0001",
//!                  "status": "active" } ] }
//! ```
//! `status` is `active` (default), `offline` (also `resigned`, `left`) or
//! `disabled`. Ids of members are strings and kept verbatim.
//!
//! The export may also be two CSV files (header row first, any column
//! order, RFC 4180 quoting): `file` names the members CSV and
//! `departmentsFile` the departments CSV; `corpId` then comes from the config.
//! - departments: `id,name,parentId,order,leaders` (leaders `;`-separated)
//! - members: `id,name,departments,position,email,mobile,jobNumber,status`
//!   (departments `;`-separated)

use jit_plugin_sdk::org::{CorpSnapshot, Dept, DeptMembership, Member, MemberStatus};
use jit_plugin_sdk::{export_plugin, json, Host, Init, PluginError, PluginType, Value};
use std::path::{Path, PathBuf};

/// One organization read from an HR export.
pub struct JsonFileCorp {
    full_name: String,
    title: String,
    file: PathBuf,
    departments_file: Option<PathBuf>,
    corp_id: Option<String>,
    provider: String,
    sync: Value,
}

impl PluginType for JsonFileCorp {
    const TYPE_NAME: &'static str = "corps.JsonFileType";
    const METHODS: &'static [&'static str] = &[
        "syncCorp",
        "getThirdCorpData",
        "getLocalCorpData",
        "getCorpInfo",
        "getRootDept",
    ];

    fn config_schema() -> Option<Value> {
        Some(json!({
            "type": "object",
            "required": ["file"],
            "properties": {
                "file": { "type": "string", "minLength": 1, "description": "HR export (.json, or members .csv), relative to the app folder" },
                "departmentsFile": { "type": "string", "minLength": 1, "description": "departments .csv, when `file` is a .csv" },
                "corpId": { "type": "string", "minLength": 1 },
                "provider": { "type": "string", "minLength": 1 },
                "sync": { "type": "object" }
            },
            "additionalProperties": false
        }))
    }

    fn create(init: Init, _host: &Host) -> Result<Self, PluginError> {
        let c = &init.config;
        let file = c
            .get("file")
            .and_then(Value::as_str)
            .ok_or("config: `file` is required")?;
        let root = Path::new(&init.app_root);
        let departments_file = c
            .get("departmentsFile")
            .and_then(Value::as_str)
            .map(|f| root.join(f));
        if is_csv(Path::new(file)) && departments_file.is_none() {
            return Err(PluginError::new(
                "config: a .csv `file` holds members; name the departments .csv with `departmentsFile`",
            ));
        }
        Ok(JsonFileCorp {
            file: root.join(file),
            departments_file,
            corp_id: c.get("corpId").and_then(Value::as_str).map(str::to_string),
            provider: c
                .get("provider")
                .and_then(Value::as_str)
                .unwrap_or("jsonfile")
                .to_string(),
            sync: c.get("sync").cloned().unwrap_or_else(|| json!({})),
            full_name: init.full_name,
            title: init.title,
        })
    }

    fn call(&self, host: &Host, method: &str, _args: Value) -> Result<Value, PluginError> {
        match method {
            "syncCorp" => {
                let snapshot = self.read()?;
                host.info(&format!(
                    "read {} departments and {} members from {}",
                    snapshot.depts.len(),
                    snapshot.members.len(),
                    self.file.display()
                ));
                let mut options = self.sync.clone();
                options["provider"] = json!(self.provider);
                host.sync_snapshot(&snapshot, options)
            }
            "getThirdCorpData" => Ok(self.read()?.to_corp_data()),
            "getLocalCorpData" => host.local_corp_data(),
            "getCorpInfo" => {
                let corp_id = match &self.corp_id {
                    Some(c) => c.clone(),
                    None => self.read()?.corp_id,
                };
                Ok(json!({
                    "title": self.title,
                    "fullName": self.full_name,
                    "corpId": corp_id,
                    "type": Self::TYPE_NAME,
                    "source": self.file.display().to_string(),
                }))
            }
            "getRootDept" => {
                let snap = self.read()?;
                let root = snap
                    .depts
                    .values()
                    .find(|d| d.parent_id.is_none())
                    .ok_or_else(|| {
                        PluginError::new(format!(
                            "{}: no department without parentId",
                            self.file.display()
                        ))
                    })?;
                Ok(
                    json!({ "deptId": root.dept_id, "name": root.name, "corpFullName": self.full_name }),
                )
            }
            other => Err(PluginError::unknown_method(other)),
        }
    }
}

impl JsonFileCorp {
    fn read(&self) -> Result<CorpSnapshot, PluginError> {
        let path = self.file.display();
        let read = |p: &Path| {
            std::fs::read_to_string(p).map_err(|e| {
                PluginError::new(format!("cannot read HR export {}: {e}", p.display()))
            })
        };
        let doc: Value = match &self.departments_file {
            Some(depts) if is_csv(&self.file) => {
                let departments = csv_departments(&read(depts)?)
                    .map_err(|e| PluginError::new(format!("{}: {e}", depts.display())))?;
                let members = csv_members(&read(&self.file)?)
                    .map_err(|e| PluginError::new(format!("{path}: {e}")))?;
                json!({ "departments": departments, "members": members })
            }
            _ => jit_plugin_sdk::serde_json::from_str(&read(&self.file)?)
                .map_err(|e| PluginError::new(format!("{path}: not valid JSON: {e}")))?,
        };
        parse_export(&doc, self.corp_id.as_deref())
            .map_err(|e| PluginError::new(format!("{path}: {e}")))
    }
}

fn is_csv(p: &Path) -> bool {
    p.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("csv"))
}

/// Splits CSV text (RFC 4180: quoted fields, doubled quotes, CRLF) into
/// rows of fields, with the 1-based line each row starts on.
fn csv_rows(text: &str) -> Result<Vec<(usize, Vec<String>)>, String> {
    let mut rows = Vec::new();
    let (mut row, mut field) = (Vec::new(), String::new());
    let (mut line, mut row_line, mut quoted, mut was_quoted) = (1, 1, false, false);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                field.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => {
                if c == '\n' {
                    line += 1;
                }
                field.push(c);
            }
            (false, '"') if field.is_empty() && !was_quoted => {
                quoted = true;
                was_quoted = true;
            }
            (false, ',') => {
                row.push(std::mem::take(&mut field));
                was_quoted = false;
            }
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut field));
                was_quoted = false;
                if row.iter().any(|f| !f.is_empty()) {
                    rows.push((row_line, std::mem::take(&mut row)));
                } else {
                    row.clear();
                }
                line += 1;
                row_line = line;
            }
            (false, c) => field.push(c),
        }
    }
    if quoted {
        return Err(format!("line {row_line}: a quoted field is never closed"));
    }
    row.push(field);
    if row.iter().any(|f| !f.is_empty()) {
        rows.push((row_line, row));
    }
    Ok(rows)
}

/// One CSV record: its line and its non-empty cells by column name.
type Record = (usize, jit_plugin_sdk::serde_json::Map<String, Value>);

/// CSV rows as objects keyed by the header row; empty cells are left out.
fn csv_records(text: &str) -> Result<Vec<Record>, String> {
    let mut rows = csv_rows(text)?.into_iter();
    let (_, header) = rows
        .next()
        .ok_or("the file is empty (a header row is required)")?;
    let header: Vec<String> = header.iter().map(|h| h.trim().to_string()).collect();
    rows.map(|(line, fields)| {
        if fields.len() > header.len() {
            return Err(format!(
                "line {line}: {} fields but the header has {}",
                fields.len(),
                header.len()
            ));
        }
        let record = header
            .iter()
            .zip(fields)
            .filter(|(_, v)| !v.trim().is_empty())
            .map(|(k, v)| (k.clone(), Value::String(v.trim().to_string())))
            .collect();
        Ok((line, record))
    })
    .collect()
}

fn int_cell(line: usize, col: &str, v: &str) -> Result<i64, String> {
    v.parse()
        .map_err(|_| format!("line {line}, column `{col}`: `{v}` is not an integer"))
}

fn list_cell(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_str)
        .map(|s| {
            s.split(';')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

/// Departments CSV: `id,name,parentId,order,leaders` (leaders `;`-separated).
fn csv_departments(text: &str) -> Result<Vec<Value>, String> {
    csv_records(text)?
        .into_iter()
        .map(|(line, r)| {
            let cell = |k: &str| r.get(k).and_then(Value::as_str);
            let id = int_cell(
                line,
                "id",
                cell("id").ok_or(format!("line {line}: `id` is empty"))?,
            )?;
            let parent = cell("parentId")
                .map(|p| int_cell(line, "parentId", p))
                .transpose()?;
            let order = cell("order")
                .map(|o| int_cell(line, "order", o))
                .transpose()?;
            Ok(json!({
                "id": id,
                "name": cell("name").ok_or(format!("line {line}: `name` is empty"))?,
                "parentId": parent,
                "order": order.unwrap_or(0),
                "leaders": list_cell(r.get("leaders")),
            }))
        })
        .collect()
}

/// Members CSV: `id,name,departments,position,email,mobile,jobNumber,status`
/// (departments `;`-separated).
fn csv_members(text: &str) -> Result<Vec<Value>, String> {
    csv_records(text)?
        .into_iter()
        .map(|(line, mut r)| {
            let depts = list_cell(r.get("departments"))
                .iter()
                .map(|d| int_cell(line, "departments", d))
                .collect::<Result<Vec<i64>, String>>()?;
            r.insert("departments".into(), json!(depts));
            Ok(Value::Object(r))
        })
        .collect()
}

/// Reads an HR export into a snapshot; errors name the JSON pointer.
pub fn parse_export(doc: &Value, corp_id: Option<&str>) -> Result<CorpSnapshot, String> {
    let corp_id = corp_id
        .map(str::to_string)
        .or_else(|| {
            doc.get("corpId")
                .and_then(Value::as_str)
                .map(str::to_string)
        })
        .ok_or("/corpId: missing (or set `corpId` in the element's config)")?;
    let mut snap = CorpSnapshot::new(corp_id);
    let depts = doc
        .get("departments")
        .and_then(Value::as_array)
        .ok_or("/departments: missing or not a list")?;
    for (i, d) in depts.iter().enumerate() {
        let at = format!("/departments/{i}");
        let id = d
            .get("id")
            .and_then(Value::as_i64)
            .ok_or(format!("{at}/id: missing or not an integer"))?;
        let name = d
            .get("name")
            .and_then(Value::as_str)
            .ok_or(format!("{at}/name: missing or not a string"))?;
        let parent = match d.get("parentId") {
            None | Some(Value::Null) => None,
            Some(p) => Some(p.as_i64().ok_or(format!("{at}/parentId: not an integer"))?),
        };
        let mut dept = Dept::new(id, parent, name);
        dept.order = d.get("order").and_then(Value::as_i64).unwrap_or(0);
        if let Some(leaders) = d.get("leaders").and_then(Value::as_array) {
            dept.leaders = leaders
                .iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect();
        }
        if snap.depts.insert(id, dept).is_some() {
            return Err(format!("{at}/id: department {id} appears twice"));
        }
    }
    for d in snap.depts.values() {
        if let Some(p) = d.parent_id {
            if !snap.depts.contains_key(&p) {
                return Err(format!(
                    "department {} names parent {p}, which is not in the export",
                    d.dept_id
                ));
            }
        }
    }
    let members = doc
        .get("members")
        .and_then(Value::as_array)
        .ok_or("/members: missing or not a list")?;
    for (i, m) in members.iter().enumerate() {
        let at = format!("/members/{i}");
        let id = m
            .get("id")
            .and_then(Value::as_str)
            .ok_or(format!("{at}/id: missing or not a string"))?;
        let name = m
            .get("name")
            .and_then(Value::as_str)
            .ok_or(format!("{at}/name: missing or not a string"))?;
        let mut member = Member::new(id, name);
        let text = |k: &str| m.get(k).and_then(Value::as_str).map(str::to_string);
        member.position = text("position");
        member.email = text("email");
        member.mobile = text("mobile");
        member.job_number = text("jobNumber");
        member.status = match m.get("status").and_then(Value::as_str).unwrap_or("active") {
            "active" => MemberStatus::Active,
            "offline" | "resigned" | "left" => MemberStatus::Offline,
            "disabled" => MemberStatus::Disabled,
            other => {
                return Err(format!(
                    "{at}/status: unknown status `{other}` (active, offline, disabled)"
                ))
            }
        };
        for (j, dept) in m
            .get("departments")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let dept_id = dept
                .as_i64()
                .ok_or(format!("{at}/departments/{j}: not an integer"))?;
            let Some(d) = snap.depts.get(&dept_id) else {
                return Err(format!(
                    "{at}/departments/{j}: department {dept_id} is not in the export"
                ));
            };
            member.depts.push(DeptMembership {
                dept_id,
                order: 0,
                is_leader: d.leaders.iter().any(|l| l == id),
            });
        }
        member.main_dept_id = member.depts.first().map(|d| d.dept_id);
        if snap.members.insert(id.to_string(), member).is_some() {
            return Err(format!("{at}/id: member `{id}` appears twice"));
        }
    }
    Ok(snap)
}

export_plugin!(types: [JsonFileCorp]);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_becomes_a_snapshot_with_leaders_and_statuses() {
        let doc = json!({
            "corpId": "acme",
            "departments": [{"id": 1, "name": "Acme"}, {"id": 2, "name": "R&D", "parentId": 1, "leaders": ["0042"]}],
            "members": [
                {"id": "0042", "name": "Zhang San", "departments": [2]},
                {"id": "0043", "name": "Li Si", "departments": [1, 2], "status": "resigned"}
            ]
        });
        let s = parse_export(&doc, None).unwrap();
        assert_eq!(s.corp_id, "acme");
        assert!(s.members["0042"].depts[0].is_leader);
        assert_eq!(s.members["0043"].status, MemberStatus::Offline);
        assert_eq!(s.members["0043"].main_dept_id, Some(1));
    }

    #[test]
    fn csv_exports_read_like_the_json_one() {
        let depts = "id,name,parentId,leaders\n1,Acme,,\n2,\"R&D, Labs\",1,0042\n";
        let members = "id,name,departments,status\r\n0042,\"Zhang \"\"San\"\"\",2,\n0043,Li Si,1;2,resigned\r\n";
        let doc = json!({ "departments": csv_departments(depts).unwrap(), "members": csv_members(members).unwrap() });
        let s = parse_export(&doc, Some("acme")).unwrap();
        assert_eq!(s.depts[&2].name, "R&D, Labs");
        assert_eq!(s.members["0042"].name, "Zhang \"San\"");
        assert!(s.members["0042"].depts[0].is_leader);
        assert_eq!(s.members["0043"].depts.len(), 2);
        assert_eq!(s.members["0043"].status, MemberStatus::Offline);
    }

    #[test]
    fn a_bad_csv_cell_names_its_line_and_column() {
        let depts = "id,name,parentId\n1,Acme,\n2,Sales,one\n";
        assert_eq!(
            csv_departments(depts).unwrap_err(),
            "line 3, column `parentId`: `one` is not an integer"
        );
    }

    #[test]
    fn unknown_department_is_reported_with_its_pointer() {
        let doc = json!({"corpId": "a", "departments": [{"id": 1, "name": "A"}],
                         "members": [{"id": "x", "name": "X", "departments": [9]}]});
        assert_eq!(
            parse_export(&doc, None).unwrap_err(),
            "/members/0/departments/0: department 9 is not in the export"
        );
    }
}
