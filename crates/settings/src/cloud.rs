//! Microsoft's national clouds and their endpoints: the defaults behind `authority`,
//! `graph_endpoint` and the IMAP/POP/SMTP hosts when only `cloud` is set.

pub struct Endpoints {
    pub authority: &'static str,
    pub graph: &'static str,
    pub imap_host: &'static str,
    pub smtp_host: &'static str,
}

pub fn endpoints(cloud: &str) -> Endpoints {
    match cloud {
        "usgov" => Endpoints {
            authority: "https://login.microsoftonline.us",
            graph: "https://graph.microsoft.us",
            imap_host: "outlook.office365.us",
            smtp_host: "smtp.office365.us",
        },
        "china" => Endpoints {
            authority: "https://login.chinacloudapi.cn",
            graph: "https://microsoftgraph.chinacloudapi.cn",
            imap_host: "partner.outlook.cn",
            smtp_host: "smtp.partner.outlook.cn",
        },
        _ => Endpoints {
            authority: "https://login.microsoftonline.com",
            graph: "https://graph.microsoft.com",
            imap_host: "outlook.office365.com",
            smtp_host: "smtp.office365.com",
        },
    }
}
